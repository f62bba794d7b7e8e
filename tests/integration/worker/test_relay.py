"""The relay executor: upstream answers, retries and their classification."""

from __future__ import annotations

import pytest

from tests.conftest import Upstream, running_worker
from tests.integration.worker.helpers import (
    final_state,
    job_for,
)
from tidegate.envelope import Job
from tidegate.keys import new_job_id
from tidegate.ledger import Ledger
from tidegate.settings import Settings
from worker.relay import Relay, is_retryable_status

pytestmark = pytest.mark.both_loops
"""Protocols of our own on sockets: run on asyncio's loop and on uvloop's."""


async def test_upstream_5xx_is_retried_then_fails_with_its_answer(
    settings: Settings, ledger: Ledger, upstream: Upstream
) -> None:
    job = job_for("fail", "/fail")
    await ledger.admit(settings.route("fail"), job, None)
    async with running_worker(settings, "fail", Relay(upstream.url, 2.0)):
        projection = await final_state(ledger, job.id)
    assert projection["state"] == "dead_lettered"
    assert projection["attempts"] == "2"  # max_attempts of the route
    assert upstream.state.calls == 2
    assert upstream.state.keys_seen == [job.id, job.id]  # same key on every attempt
    result = await ledger.result(job.id)
    assert result is not None
    assert result.status == 500
    kinds = [e["type"] for e in await ledger.events(job.id)]
    assert kinds == ["accepted", "started", "failed", "started", "failed", "dead_lettered"]


async def test_unreachable_upstream_fails_with_a_502_problem(
    settings: Settings, ledger: Ledger
) -> None:
    job = job_for("fail", "/anything")
    await ledger.admit(settings.route("fail"), job, None)
    async with running_worker(settings, "fail", Relay("http://127.0.0.1:1", 1.0)):
        projection = await final_state(ledger, job.id)
    assert projection["state"] == "dead_lettered"
    assert "unreachable" in projection["last_error"]
    result = await ledger.result(job.id)
    assert result is not None
    assert result.status == 502
    assert b"job-failed" in result.body


async def test_4xx_is_a_definitive_answer_not_retried(
    settings: Settings, ledger: Ledger, upstream: Upstream
) -> None:
    job = Job(id=new_job_id("orders"), route="orders", method="POST", path="/nope")
    await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", Relay(upstream.url, 2.0)):
        projection = await final_state(ledger, job.id)
    assert projection["state"] == "succeeded"
    assert projection["status"] == "404"
    assert projection["attempts"] == "1"


@pytest.mark.parametrize(
    ("status", "retry"), [(200, False), (404, False), (429, True), (503, True)]
)
def test_retry_classification(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry
