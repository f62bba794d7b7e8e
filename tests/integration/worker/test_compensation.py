"""Compensation of dead-lettered jobs: once, by relay or handler, or not at all."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from tests.conftest import Upstream, running_worker, wait_until
from tests.integration.worker.helpers import (
    job_for,
)
from tidegate.envelope import Job
from tidegate.keys import RouteKeys, new_job_id
from tidegate.ledger import Ledger
from tidegate.settings import Settings
from worker.handler import Handler
from worker.relay import Relay


async def test_dead_letter_is_compensated_once(
    settings: Settings, ledger: Ledger, upstream: Upstream, redis: Redis
) -> None:
    job = Job(
        id=new_job_id("fail"),
        route="fail",
        method="POST",
        path="/fail",
        query="x=1",
        headers=(("X-Order", "42"),),
        body=b"\x00binary",
    )
    await ledger.admit(settings.route("fail"), job, None)
    upstream.state.fail_compensations = 1  # the first compensation call fails
    relay = Relay(upstream.url, 2.0, "/compensate")
    async with running_worker(settings, "fail", relay) as worker:

        async def compensated() -> bool:
            return (await ledger.projection(job.id))["state"] == "compensated"

        await wait_until(compensated, what="the compensation")
        assert worker.compensator.failed == 1  # retried after the visibility timeout
        assert worker.compensator.compensated == 1
        metrics = worker.consumer.metrics
        assert metrics.attempts.labels("fail", "retried")._value.get() == 1
        assert metrics.attempts.labels("fail", "dead_lettered")._value.get() == 1
        assert metrics.dead_letters.labels("fail")._value.get() == 1
    assert upstream.state.compensation_calls == 2
    record = upstream.state.compensations[f"{job.id}:compensate"]
    assert record["job"] == job.id
    assert "500" in str(record["error"])
    assert record["request"] == {
        "method": "POST",
        "path": "/fail",
        "query": "x=1",
        "headers": [["X-Order", "42"]],
        "body_base64": "AGJpbmFyeQ==",
    }
    kinds = [e["type"] for e in await ledger.events(job.id)]
    assert kinds[-2:] == ["dead_lettered", "compensated"]
    assert kinds.count("compensated") == 1
    pending: Any = await redis.xpending(RouteKeys("fail").dead, "compensators")
    assert pending["pending"] == 0


async def test_handler_compensation_and_routes_without_one(
    settings: Settings, ledger: Ledger, redis: Redis
) -> None:
    undone: list[tuple[str, str]] = []

    async def refuse(job: Job) -> bytes:
        raise RuntimeError("cannot")

    async def undo(job: Job, error: str) -> dict[str, str]:
        undone.append((job.id, error))
        return {"undone": job.id}

    first, second = job_for("fail", "/fail"), job_for("fail", "/fail")
    await ledger.admit(settings.route("fail"), first, None)
    async with running_worker(settings, "fail", Handler(refuse, undo)):

        async def compensated() -> bool:
            return (await ledger.projection(first.id))["state"] == "compensated"

        await wait_until(compensated, what="the handler's compensation")
    assert undone == [(first.id, "handler raised RuntimeError: cannot")]

    await ledger.admit(settings.route("fail"), second, None)
    async with running_worker(settings, "fail", Handler(refuse)) as worker:

        async def dead_letter_handled() -> bool:
            return worker.compensator.skipped == 1

        await wait_until(dead_letter_handled, what="the dead letter to be acknowledged")
    assert (await ledger.projection(second.id))["state"] == "dead_lettered"
