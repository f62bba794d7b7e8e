"""The ledger's error boundary: what redis-py raises becomes our errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tidegate.errors import RedisUnavailable
from tidegate.ledger.client import redis_errors


def raising_in(filename: str, statement: str) -> Callable[[], None]:
    """A function whose code lives in ``filename`` (as a library's frame would)."""
    scope: dict[str, object] = {}
    exec(compile(f"def f():\n    {statement}\n", filename, "exec"), scope)
    f = scope["f"]
    assert callable(f)
    return f


@pytest.mark.parametrize(
    ("filename", "statement"),
    [
        ("/venv/redis/asyncio/connection.py", "None.writelines([])"),  # 'NoneType' ... attribute
        ("/usr/lib/python3.12/asyncio/selector_events.py", "(lambda: None)()()"),  # not callable
        ("/usr/lib/python3.13/asyncio/streams.py", "None._add_writer"),
    ],
)
def test_a_transport_closed_under_a_write_is_redis_unavailable(
    filename: str, statement: str
) -> None:
    with (
        pytest.raises(RedisUnavailable, match="connection lost while writing"),
        redis_errors("writing"),
    ):
        raising_in(filename, statement)()


@pytest.mark.parametrize(
    ("filename", "statement", "error"),
    [
        ("/app/tidegate/ledger/scripts.py", "None.writelines([])", AttributeError),  # ours
        ("/venv/redis/asyncio/connection.py", "int('x')", ValueError),
        ("/venv/redis/asyncio/connection.py", "len(5)", TypeError),  # not about None
        ("/usr/lib/python3.12/json/encoder.py", "(lambda: None)()()", TypeError),
    ],
)
def test_other_bugs_are_not_taken_for_an_outage(
    filename: str, statement: str, error: type[Exception]
) -> None:
    with pytest.raises(error), redis_errors("writing"):
        raising_in(filename, statement)()
