"""A blocking read with the starts of what it delivered right behind it, on its
connection (``ConsumerGroup.read_then`` carrying ``Ledger.start_read``), on
redis-server: what it starts, what it leaves alone, and how it does without."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import wait_until
from tests.integration.ledger.helpers import new_job
from tidegate.keys import GROUP, RouteKeys
from tidegate.ledger import Ledger
from tidegate.ledger.calls import Verdict
from tidegate.ledger.client import Connection
from tidegate.ledger.groups import ConsumerGroup
from tidegate.ledger.scripts import load_all
from tidegate.settings import Settings

pytestmark = pytest.mark.both_loops

STREAM = RouteKeys("orders").requests


async def group_of(redis: Connection, consumer: str) -> ConsumerGroup:
    group = ConsumerGroup(redis, STREAM, GROUP, consumer)
    await group.ensure()
    await load_all(redis)  # as any call of the ledger's would have
    return group


async def blocked(redis: Connection) -> bool:
    return int((await redis.info("clients"))["blocked_clients"]) >= 1


async def started_events(ledger: Ledger, job_id: str) -> list[dict[str, str]]:
    return [e for e in await ledger.events(job_id) if e["type"] == "started"]


async def test_what_arrives_while_the_read_waits_is_started_by_the_call_behind_it(
    settings: Settings, ledger: Ledger, redis: Connection
) -> None:
    group = await group_of(redis, "c1")
    reading = asyncio.create_task(
        group.read_then(10, 5000, ledger.start_read("orders", "c1", 10, "0-0"))
    )
    await wait_until(lambda: blocked(redis), what="the read to block in Redis")
    job = new_job()
    await ledger.admit(settings.route("orders"), job, None)
    entries, started = await reading
    assert [fields and fields[b"job"] for _, fields in entries] == [job.id.encode()]
    assert started == {entries[0][0]: Verdict(1, "running")}
    projection = await ledger.projection(job.id)
    assert (projection["state"], projection["attempts"], projection["consumer"]) == (
        "running",
        "1",
        "c1",
    )
    assert [e["type"] for e in await ledger.events(job.id)] == ["accepted", "started"]


async def test_entries_read_before_and_entries_taken_over_are_left_to_the_worker(
    settings: Settings, ledger: Ledger, redis: Connection
) -> None:
    route = settings.route("orders")
    first, second, lost, fresh = (new_job(str(i).encode()) for i in range(4))
    for job in (first, second):
        await ledger.admit(route, job, None)
    c1 = await group_of(redis, "c1")
    (read_first,), started = await c1.read_then(1, 10, ledger.start_read("orders", "c1", 1, "0-0"))
    assert started == {read_first[0]: Verdict(1, "running")}
    # The next read starts only what it delivered: not the entry read before it.
    after = read_first[0].decode()
    (read_second,), started = await c1.read_then(
        10, 10, ledger.start_read("orders", "c1", 10, after)
    )
    assert started == {read_second[0]: Verdict(1, "running")}
    assert len(await started_events(ledger, first.id)) == 1

    # An entry another consumer took over was delivered twice: its new
    # holder starts it itself (another attempt), never the read's call.
    await ledger.admit(route, lost, None)
    (lost_entry,) = await c1.read(1, 10)
    c2 = await group_of(redis, "c2")
    await redis.xclaim(STREAM, GROUP, "c2", 0, [lost_entry[0]])
    await ledger.admit(route, fresh, None)
    (fresh_entry,), started = await c2.read_then(
        10, 10, ledger.start_read("orders", "c2", 10, "0-0")
    )
    assert started == {fresh_entry[0]: Verdict(1, "running")}
    assert (await ledger.projection(lost.id))["state"] == "queued"
    assert (await ledger.projection(fresh.id))["state"] == "running"


async def test_a_read_that_times_out_starts_nothing(ledger: Ledger, redis: Connection) -> None:
    group = await group_of(redis, "c1")
    assert await group.read_then(10, 10, ledger.start_read("orders", "c1", 10, "0-0")) == ([], {})


async def test_a_forgotten_script_is_loaded_again_and_the_entries_are_left_to_the_worker(
    settings: Settings, ledger: Ledger, redis: Connection
) -> None:
    route = settings.route("orders")
    group = await group_of(redis, "c1")
    await redis.script_flush()  # as after a restart without persistence
    job, later = new_job(b"1"), new_job(b"2")
    await ledger.admit(route, job, None)
    await redis.script_flush()
    entries, started = await group.read_then(10, 10, ledger.start_read("orders", "c1", 10, "0-0"))
    assert [e[1] and e[1][b"job"] for e in entries] == [job.id.encode()]
    assert started is None  # NOSCRIPT: nothing ran
    assert (await ledger.projection(job.id))["state"] == "queued"
    await ledger.admit(route, later, None)
    after = entries[0][0].decode()
    entries, started = await group.read_then(10, 10, ledger.start_read("orders", "c1", 10, after))
    assert started == {entries[0][0]: Verdict(1, "running")}  # loaded again by the first


async def test_without_a_link_of_its_own_the_read_goes_alone(
    settings: Settings, ledger: Ledger, redis_url: str
) -> None:
    """A client without links (TLS, Sentinel, Cluster are such clients) reads
    as before and says the call behind did not run."""
    plain: Any = Redis.from_url(redis_url)
    try:
        group = ConsumerGroup(plain, STREAM, GROUP, "c1")
        await group.ensure()
        job = new_job()
        await ledger.admit(settings.route("orders"), job, None)
        entries, started = await group.read_then(
            10, 10, ledger.start_read("orders", "c1", 10, "0-0")
        )
        assert [e[1] and e[1][b"job"] for e in entries] == [job.id.encode()]
        assert started is None
        assert (await ledger.projection(job.id))["state"] == "queued"
    finally:
        await plain.aclose()
