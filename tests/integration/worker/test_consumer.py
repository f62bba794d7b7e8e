"""The consumer runtime: malformed entries, its group, concurrency, draining, reclaim."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import running_worker, wait_until
from tests.integration.worker.helpers import (
    final_state,
    job_for,
    with_visibility,
)
from tidegate.envelope import Job
from tidegate.errors import RedisCommandError
from tidegate.keys import GROUP, RouteKeys
from tidegate.ledger import Ledger
from tidegate.ledger.groups import ensure_group
from tidegate.settings import Settings
from worker.handler import Handler


async def test_malformed_entry_is_dead_lettered_not_looped(
    settings: Settings, ledger: Ledger, redis: Redis
) -> None:
    keys = RouteKeys("orders")
    await redis.xadd(keys.requests, {"garbage": "1"})
    good = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), good, None)

    async def ok(job: Job) -> bytes:
        return b"ok"

    async with running_worker(settings, "orders", Handler(ok)):
        await final_state(ledger, good.id)

        async def dead_lettered() -> bool:
            return await redis.xlen(keys.dead) == 1

        await wait_until(dead_lettered, what="the malformed entry to be dead-lettered")
    dead: Any = await redis.xrange(keys.dead)
    assert b"not a job envelope" in dead[0][1][b"error"]
    groups: Any = await redis.xinfo_groups(keys.requests)
    assert groups[0]["pending"] == 0


async def test_group_creation_tolerates_only_busygroup(redis: Redis) -> None:
    stream = RouteKeys("orders").requests
    await ensure_group(redis, stream, GROUP)
    await ensure_group(redis, stream, GROUP)  # exists already: fine
    groups: Any = await redis.xinfo_groups(stream)
    assert [g["name"] for g in groups] == [GROUP.encode()]
    await redis.set(RouteKeys("reports").requests, "not a stream")
    with pytest.raises(RedisCommandError, match="WRONGTYPE"):
        await ensure_group(redis, RouteKeys("reports").requests, GROUP)


async def test_concurrency_bounds_jobs_in_flight(settings: Settings, ledger: Ledger) -> None:
    running = 0
    peak = 0
    gate = asyncio.Event()

    async def slow(job: Job) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return b""

    jobs = [job_for("orders", "/orders", str(i).encode()) for i in range(10)]
    for job in jobs:
        await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", Handler(slow), concurrency=3) as worker:

        async def three_running() -> bool:
            return running == 3

        await wait_until(three_running, what="three jobs in flight")
        assert len(worker.consumer.in_flight) == 3
        gate.set()
        for job in jobs:
            await final_state(ledger, job.id)
    assert peak == 3


async def test_stop_drains_jobs_in_flight(settings: Settings, ledger: Ledger) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(job: Job) -> bytes:
        started.set()
        await release.wait()
        return b"finished during drain"

    job = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", Handler(slow)) as worker:
        await asyncio.wait_for(started.wait(), 10)
        worker.stop.set()  # SIGTERM: stop reading, finish what runs
        await asyncio.sleep(0)
        assert not worker.task.done()
        release.set()
        await asyncio.wait_for(worker.task, 10)
    assert (await ledger.projection(job.id))["state"] == "succeeded"


async def test_entries_of_a_lost_worker_are_reclaimed(
    settings: Settings, ledger: Ledger, redis: Redis
) -> None:
    """A worker read the entry and died: another one takes it over and finishes it."""
    settings = with_visibility(settings, 0.2)
    job = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), job, None)
    stream = RouteKeys("orders").requests
    await ensure_group(redis, stream, GROUP)
    lost: Any = await redis.xreadgroup(GROUP, "lost-worker", {stream: ">"}, count=1)
    entry_id = lost[0][1][0][0].decode()
    assert await ledger.start(job, entry_id, "lost-worker") is not None  # then "SIGKILL"

    attempts: list[int] = []

    async def ok(job: Job) -> bytes:
        attempts.append(job.attempt)
        return b"done by the survivor"

    async with running_worker(settings, "orders", Handler(ok)) as survivor:
        projection = await final_state(ledger, job.id)
        assert survivor.consumer.reclaimed == 1
        assert survivor.consumer.metrics.reclaims.labels("orders")._value.get() == 1
    assert projection["state"] == "succeeded"
    assert attempts == [2]  # the lost attempt counts
    pending: Any = await redis.xpending(stream, GROUP)
    assert pending["pending"] == 0


async def test_long_jobs_are_not_stolen_while_alive(settings: Settings, ledger: Ledger) -> None:
    """A job running past the visibility timeout keeps its claim (heartbeat)."""
    settings = with_visibility(settings, 0.3)
    job = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), job, None)
    release = asyncio.Event()
    runs: list[str] = []

    async def slow(job: Job) -> bytes:
        runs.append(job.id)
        await release.wait()
        return b"slow but alive"

    async def fast(job: Job) -> bytes:
        runs.append("stolen")
        return b""

    async with running_worker(settings, "orders", Handler(slow)) as first:

        async def running() -> bool:
            return bool(runs)

        await wait_until(running, what="the slow job to start")
        async with running_worker(settings, "orders", Handler(fast)) as second:
            # Several visibility timeouts pass while the first worker holds the
            # job; the second one looks for idle entries all along.
            deadline = asyncio.get_running_loop().time() + 1.5
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
                assert second.consumer.reclaimed == 0
            release.set()
            await final_state(ledger, job.id)
        assert first.consumer.reclaimed == 0
    assert runs == [job.id]
    assert (await ledger.projection(job.id))["attempts"] == "1"


async def test_a_backlog_is_taken_read_and_started_in_one_call(
    settings: Settings, ledger: Ledger, redis: Redis
) -> None:
    """Once a read fills its count, the consumer takes (reads and starts in
    one call); every job still starts once, as attempt 1, and ends once."""
    jobs = [job_for("orders", "/orders", str(i).encode()) for i in range(24)]
    for job in jobs:
        await ledger.admit(settings.route("orders"), job, None)

    async def ok(job: Job) -> bytes:
        return job.body

    async with running_worker(settings, "orders", Handler(ok), concurrency=4) as worker:

        async def all_done() -> bool:
            return worker.consumer.processed == len(jobs)

        await wait_until(all_done, what="the backlog to drain")
    assert worker.consumer.taken > 0
    for job in jobs:
        assert (await ledger.projection(job.id))["state"] == "succeeded"
        events = await ledger.events(job.id)
        assert [e["type"] for e in events] == ["accepted", "started", "succeeded"]
        assert events[1]["attempt"] == "1"
        assert await ledger.result(job.id) is not None
    groups: Any = await redis.xinfo_groups(RouteKeys("orders").requests)
    assert groups[0]["pending"] == 0


async def test_a_job_is_started_by_the_round_trip_of_the_read_that_delivers_it(
    settings: Settings, ledger: Ledger, redis: Redis
) -> None:
    """At low load every read blocks until a job comes; the start rides
    behind the read on its connection, so no call of its own starts it. A
    client without links (the cluster variant) starts each job on its own."""
    jobs = [job_for("orders", "/orders", str(i).encode()) for i in range(3)]

    async def ok(job: Job) -> bytes:
        return job.body

    async with running_worker(settings, "orders", Handler(ok)) as worker:
        for job in jobs:  # one at a time: each read waits for its job
            await ledger.admit(settings.route("orders"), job, None)
            await final_state(ledger, job.id)
        linked = settings.redis.mode == "standalone"
        assert worker.consumer.taken == (len(jobs) if linked else 0)
    for job in jobs:
        events = await ledger.events(job.id)
        assert [e["type"] for e in events] == ["accepted", "started", "succeeded"]
        assert events[1]["attempt"] == "1"
