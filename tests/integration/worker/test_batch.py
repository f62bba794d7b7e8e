"""Batch handlers: many jobs per call, each job still on its own (events,
attempts, retries), against real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import running_worker, wait_until
from tests.integration.worker.helpers import final_state, job_for, with_visibility
from tidegate.envelope import Job, Reply
from tidegate.errors import ConfigError
from tidegate.keys import GROUP, RouteKeys
from tidegate.ledger import Ledger
from tidegate.settings import Settings
from worker.batch import BatchHandler
from worker.main import build_executor


async def admitted(ledger: Ledger, settings: Settings, bodies: list[bytes]) -> list[Job]:
    jobs = [job_for("orders", "/orders", body) for body in bodies]
    for job in jobs:
        await ledger.admit(settings.route("orders"), job, None)
    return jobs


async def kinds(ledger: Ledger, job: Job) -> list[str]:
    return [e["type"] for e in await ledger.events(job.id)]


async def test_one_call_mixed_outcomes_each_job_on_its_own(
    settings: Settings, ledger: Ledger
) -> None:
    calls: list[list[bytes]] = []

    async def handle(jobs: list[Job]) -> list[Any]:
        calls.append([j.body for j in jobs])
        out: list[Any] = []
        for job in jobs:
            if job.body == b"flaky" and job.attempt == 1:
                out.append(ValueError("not yet"))  # this job alone fails
            elif job.body == b"raw":
                out.append(b"bytes")
            elif job.body == b"json":
                out.append({"n": 1})
            else:
                out.append(Reply(201, (), job.body.upper()))
        return out

    jobs = await admitted(ledger, settings, [b"a", b"flaky", b"raw", b"json", b"b"])
    handler = BatchHandler(handle, size=5, wait_s=5.0)
    async with running_worker(settings, "orders", handler, concurrency=5):
        for job in jobs:
            await final_state(ledger, job.id)
    assert calls[0] == [b"a", b"flaky", b"raw", b"json", b"b"]  # one call for all five
    assert calls[1:] == [[b"flaky"]]  # the retry came alone, after its backoff wait
    for job in jobs:
        assert (await ledger.projection(job.id))["state"] == "succeeded"
    assert await kinds(ledger, jobs[1]) == ["accepted", "started", "failed", "started", "succeeded"]
    assert await kinds(ledger, jobs[0]) == ["accepted", "started", "succeeded"]
    assert await ledger.result(jobs[0].id) == Reply(201, (), b"A")
    raw = await ledger.result(jobs[2].id)
    assert raw is not None
    assert raw.body == b"bytes"
    as_json = await ledger.result(jobs[3].id)
    assert as_json is not None
    assert as_json.body == b'{"n": 1}'
    events = await ledger.events(jobs[1].id)
    assert "ValueError: not yet" in events[2]["error"]


@pytest.mark.parametrize("broken", ["raises", "short"])
async def test_a_failing_call_fails_every_job_of_its_batch_retryably(
    settings: Settings, ledger: Ledger, broken: str
) -> None:
    seen = 0

    async def handle(jobs: list[Job]) -> list[Any]:
        nonlocal seen
        seen += 1
        if seen == 1:
            if broken == "raises":
                raise RuntimeError("database down")
            return ["only one"]
        return ["ok"] * len(jobs)

    jobs = await admitted(ledger, settings, [b"1", b"2", b"3"])
    async with running_worker(settings, "orders", BatchHandler(handle, 3, 5.0), concurrency=3):
        for job in jobs:
            await final_state(ledger, job.id)
    why = "RuntimeError: database down" if broken == "raises" else "returned 1 outcome(s) for 3"
    for job in jobs:
        events = await ledger.events(job.id)
        assert [e["type"] for e in events] == [
            "accepted",
            "started",
            "failed",
            "started",
            "succeeded",
        ]
        assert why in events[2]["error"]


async def test_fewer_than_n_are_called_after_the_wait(settings: Settings, ledger: Ledger) -> None:
    sizes: list[int] = []

    async def handle(jobs: list[Job]) -> list[Any]:
        sizes.append(len(jobs))
        return ["ok"] * len(jobs)

    jobs = await admitted(ledger, settings, [b"1", b"2", b"3"])
    handler = BatchHandler(handle, size=64, wait_s=0.05)
    async with running_worker(settings, "orders", handler, concurrency=64):
        for job in jobs:
            await final_state(ledger, job.id)
    assert sum(sizes) == 3
    assert max(sizes) <= 3  # never waited for 64


async def test_a_worker_killed_mid_batch_leaves_every_job_to_end_exactly_once(
    settings: Settings, ledger: Ledger
) -> None:
    short = with_visibility(settings, 1.0)
    stuck = asyncio.Event()

    async def hang(jobs: list[Job]) -> list[Any]:
        stuck.set()
        await asyncio.Event().wait()  # never returns: the worker is stopped under it
        return []

    async def handle(jobs: list[Job]) -> list[Any]:
        return [job.body for job in jobs]

    jobs = await admitted(ledger, short, [b"1", b"2", b"3", b"4"])
    async with running_worker(short, "orders", BatchHandler(hang, 4, 5.0), concurrency=4):
        await asyncio.wait_for(stuck.wait(), 10)
    # Stopped past its grace: the batch's entries are still pending; another
    # worker reclaims them once the visibility timeout has passed.
    async with running_worker(short, "orders", BatchHandler(handle, 4, 0.05), concurrency=4):
        for job in jobs:
            await final_state(ledger, job.id)

        async def all_acknowledged() -> bool:
            summary: Any = await ledger._redis.xpending(RouteKeys("orders").requests, GROUP)
            return int(summary["pending"]) == 0

        await wait_until(all_acknowledged, what="every entry acknowledged")
    for job in jobs:
        events = await kinds(ledger, job)
        assert events.count("succeeded") == 1
        assert events.count("started") == 2  # the killed attempt, then the one that ended
        result = await ledger.result(job.id)
        assert result is not None
        assert result.body == job.body


def test_batch_options_are_checked(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="goes with --app"):
        build_executor(settings, "orders", "http://svc", None, batch_size=8)
    with pytest.raises(ConfigError, match="at least 1"):
        build_executor(settings, "orders", None, "json:loads", batch_size=0)
    with pytest.raises(ConfigError, match="must not be negative"):
        build_executor(settings, "orders", None, "json:loads", batch_size=8, batch_wait_ms=-1)
