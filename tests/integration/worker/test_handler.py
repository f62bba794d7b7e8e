"""The handler executor: Python handlers, their loading, their answers and errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import worker.consumer as consumer_module
from tests.conftest import running_worker, wait_until
from tests.integration.worker.helpers import (
    final_state,
    job_for,
)
from tidegate.envelope import Job, Reply
from tidegate.errors import ConfigError
from tidegate.ledger import Ledger
from tidegate.settings import Settings
from worker.group_reader import Fetched, GroupReader
from worker.handler import Handler, load_handler, to_reply


async def test_handler_mode(settings: Settings, ledger: Ledger, tmp_path: Path) -> None:
    module = tmp_path / "my_handlers.py"
    module.write_text(
        textwrap.dedent(
            """
            from tidegate.envelope import Job, Reply

            async def handle(job: Job) -> Reply:
                return Reply(207, (("X-Job", job.id),), job.body.upper())
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        fn = load_handler("my_handlers:handle")
    finally:
        sys.path.remove(str(tmp_path))
    job = job_for("orders", "/orders", b"abc")
    await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", Handler(fn)):
        await final_state(ledger, job.id)
    assert await ledger.result(job.id) == Reply(207, (("X-Job", job.id),), b"ABC")


def test_handler_loading_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="expected module:function"):
        load_handler("nocolon")
    with pytest.raises(ConfigError, match="cannot import"):
        load_handler("no_such_module_here:fn")
    with pytest.raises(ConfigError, match="not an async function"):
        load_handler("json:dumps")


def test_handler_return_values() -> None:
    assert to_reply(b"x") == Reply(200, (("Content-Type", "application/octet-stream"),), b"x")
    assert to_reply({"a": 1}).body == b'{"a": 1}'
    assert to_reply(Reply(204)) == Reply(204)


def failing_once(attempts: list[int]) -> Handler:
    """A handler that raises on a job's first attempt and works on the next,
    recording each attempt's number."""

    async def flaky(job: Job) -> bytes:
        attempts.append(job.attempt)
        if job.attempt == 1:
            raise RuntimeError("first time fails")
        return b"second time works"

    return Handler(flaky)


async def test_handler_exception_is_retried(settings: Settings, ledger: Ledger) -> None:
    calls: list[int] = []
    job = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", failing_once(calls)):
        projection = await final_state(ledger, job.id)
    assert projection["state"] == "succeeded"
    assert calls == [1, 2]
    assert "first time fails" in projection["last_error"]


async def test_a_retry_parked_while_the_read_blocks_is_promoted_when_due(
    settings: Settings, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads block for 3 s and look for due retries once a minute: the
    retry (due 5-10 ms after the failure) is promoted by its own timer, and
    the promotion wakes the read blocked at that moment, which comes back
    with the retried entry instead of running out empty."""
    monkeypatch.setattr(consumer_module, "BLOCK_MS", 3_000)
    monkeypatch.setattr(consumer_module, "PROMOTE_EVERY_S", 60.0)
    fetched: list[int] = []
    fetch = GroupReader.fetch

    async def counting(self: GroupReader, *args: Any, **kwargs: Any) -> Fetched:
        result = await fetch(self, *args, **kwargs)
        fetched.append(len(result.entries))
        return result

    monkeypatch.setattr(GroupReader, "fetch", counting)
    attempts: list[int] = []
    async with running_worker(settings, "orders", failing_once(attempts)) as worker:
        await wait_until(lambda: worker.consumer._promote_at[0] > 0, what="the first look")
        job = job_for("orders", "/orders")
        fetched.clear()
        await ledger.admit(settings.route("orders"), job, None)
        projection = await final_state(ledger, job.id)
        reads = list(fetched)
    assert projection["state"] == "succeeded"
    assert attempts == [1, 2]
    # Each attempt's entry woke a read, and no read ran out between the two
    # (reads before the admission or after the end may run out: not counted).
    woke = [i for i, n in enumerate(reads) if n]
    assert len(woke) == 2, reads
    assert woke[1] == woke[0] + 1, reads
