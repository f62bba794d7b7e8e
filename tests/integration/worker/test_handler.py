"""The handler executor: Python handlers, their loading, their answers and errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import running_worker
from tests.integration.worker.helpers import (
    final_state,
    job_for,
)
from tidegate.envelope import Job, Reply
from tidegate.errors import ConfigError
from tidegate.ledger import Ledger
from tidegate.settings import Settings
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


async def test_handler_exception_is_retried(settings: Settings, ledger: Ledger) -> None:
    calls: list[int] = []

    async def flaky(job: Job) -> bytes:
        calls.append(job.attempt)
        if job.attempt == 1:
            raise RuntimeError("first time fails")
        return b"second time works"

    job = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", Handler(flaky)):
        projection = await final_state(ledger, job.id)
    assert projection["state"] == "succeeded"
    assert calls == [1, 2]
    assert "first time fails" in projection["last_error"]
