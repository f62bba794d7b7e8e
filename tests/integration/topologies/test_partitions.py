"""A partitioned route (``partitions: 3``) on one server and on a Redis Cluster.

Its jobs spread evenly over the partitions (on the cluster: over every
master), a job id finds its partition, an Idempotency-Key always meets the
same one, workers drain and compensate every partition, and the scaler, the
throttle, status, replay and trimming see the route as the sum of its parts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from scaler.sampling import sample_route
from tests.conftest import make_settings, running_gateway, running_worker, wait_until
from tests.redis_cluster import RedisCluster
from tidegate.envelope import Job
from tidegate.errors import Refused
from tidegate.keys import parts_of, slot_of
from tidegate.ledger import TERMINAL_STATES, Ledger, backlog, throttle_record
from tidegate.ledger.client import Connection
from tidegate.ledger.route_status import routes_status
from tidegate.ledger.store import Store
from tidegate.settings import Settings
from tidegate.throttle import Throttle
from worker.handler import Handler

PARTITIONS = 3
BULK = {
    "name": "bulk",
    "match": {"path_prefix": "/bulk", "methods": ["POST"]},
    "mode": "async",
    "partitions": PARTITIONS,
    "worker": {"max_attempts": 1, "visibility_timeout_s": 5},
}


@pytest.fixture(params=["standalone", "cluster"])
def settings(request: pytest.FixtureRequest, redis_url: str) -> Settings:
    if request.param == "standalone":
        return make_settings(redis_url, extra_routes=(BULK,))
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    cluster.flush()
    return make_settings(cluster.url, redis_mode="cluster", extra_routes=(BULK,))


@pytest.fixture
async def book(redis: Connection, settings: Settings) -> AsyncIterator[Ledger]:
    ledger = Ledger(redis, settings.routes, admission_batch_max=64)
    ledger.open()
    yield ledger
    await ledger.close()


def new_job(book: Ledger, body: bytes = b"x", tenant: str = "", key: str | None = None) -> Job:
    route = book.routes["bulk"]
    return Job(
        id=book.new_job_id(route, tenant, key), route="bulk", method="POST", path="/bulk", body=body
    )


async def lengths(redis: Connection) -> list[int]:
    return [int(await redis.xlen(keys.requests)) for keys in parts_of(BULK_LAYOUT)]


class _Layout:
    name = "bulk"
    partitions = PARTITIONS


BULK_LAYOUT = _Layout()


async def test_partitions_sit_on_every_master(redis_cluster: RedisCluster) -> None:
    client = ClusterClient.from_url(redis_cluster.url)
    try:
        await client.initialize()
        parts = parts_of(BULK_LAYOUT)
        for keys in parts:  # our slot arithmetic is the cluster's
            assert int(await client.cluster_keyslot(keys.requests)) == slot_of(keys.tag)
        nodes = {client.get_node_from_key(keys.requests) for keys in parts}
    finally:
        await client.aclose()
    assert None not in nodes
    assert len(nodes) == PARTITIONS


async def test_jobs_spread_evenly_and_are_found_by_id(book: Ledger, redis: Connection) -> None:
    jobs = [new_job(book, body=b"%d" % i) for i in range(3 * PARTITIONS * 4)]
    admitted = await asyncio.gather(*(book.admit(book.routes["bulk"], j) for j in jobs))
    assert {a.outcome for a in admitted} == {"new"}
    assert await lengths(redis) == [12, 12, 12]
    for j in jobs[:PARTITIONS]:  # the job API reads each job in its own partition
        assert (await book.projection(j.id))["state"] == "queued"
        assert [e["type"] for e in await book.events(j.id)] == ["accepted"]
    await book.cancel(jobs[1].id)
    assert (await book.projection(jobs[1].id))["state"] == "cancelled"


async def test_a_key_always_meets_the_same_partition(settings: Settings, redis: Connection) -> None:
    gateways = [Ledger(redis, settings.routes) for _ in range(2)]  # two gateway processes
    route = settings.route("bulk")
    first: dict[str, str] = {}
    for attempt, book in enumerate(gateways * 2):
        for n in range(12):
            key = f"key-{n}"
            job = new_job(book, body=b"same", tenant="acme", key=key)
            admitted = await book.admit(route, job, key)
            if attempt == 0:
                assert admitted.outcome == "new"
                first[key] = admitted.job_id
            else:
                assert admitted == (first[key], "duplicate")
    assert all(n > 0 for n in await lengths(redis))  # twelve keys: every partition has some
    assert sum(await lengths(redis)) == 12


async def test_workers_drain_and_compensate_every_partition(
    settings: Settings, book: Ledger, redis: Connection
) -> None:
    compensated: list[str] = []

    async def handle(job: Job) -> dict[str, Any]:
        if job.body == b"fail":
            raise RuntimeError("refused")
        return {"ok": job.body.decode()}

    async def compensate(job: Job, error: str) -> dict[str, Any]:
        compensated.append(job.id)
        return {"undone": job.id}

    jobs = [new_job(book, body=b"%d" % i) for i in range(20)]
    failing = [new_job(book, body=b"fail") for _ in range(PARTITIONS)]
    for j in jobs + failing:
        await book.admit(book.routes["bulk"], j)
    assert {j.id.partition(".")[0] for j in failing} == {k.tag for k in parts_of(BULK_LAYOUT)}

    async def all_ended() -> bool:
        states = await book.states([j.id for j in jobs + failing])
        return all(s in TERMINAL_STATES for s in states)

    async with running_worker(settings, "bulk", Handler(handle, compensate), concurrency=4):
        await wait_until(all_ended, timeout_s=30, what="every job of every partition to end")

        async def all_compensated() -> bool:
            return len(compensated) == PARTITIONS

        await wait_until(all_compensated, timeout_s=30, what="the dead letters to be compensated")
    states = Counter(await book.states([j.id for j in jobs + failing]))
    assert states == {"succeeded": 20, "compensated": PARTITIONS}
    assert sorted(compensated) == sorted(j.id for j in failing)
    measured = await backlog.measure(redis, settings.route("bulk"))
    assert (measured.waiting, measured.pending, measured.exact) == (0, 0, True)


async def test_the_scaler_and_status_see_the_sum(
    settings: Settings, book: Ledger, redis: Connection
) -> None:
    route = settings.route("bulk")
    for i in range(7):
        await book.admit(route, new_job(book, body=b"%d" % i))
    measured = await backlog.measure(redis, route)
    assert (measured.waiting, measured.length, measured.exact) == (7, 7, True)
    assert measured.oldest_waiting_ms is not None
    sample = await sample_route(
        Store(redis), route, now_s=1.0, ready_replicas=0, current_replicas=0
    )
    assert (sample.waiting, sample.added_total, sample.completed_total) == (7, 7, 0)
    status = await routes_status(redis, settings)
    assert status["bulk"].backlog == measured
    trimmed = await book.trim("bulk")
    assert trimmed.requests == 0  # nothing consumed yet: nothing to drop
    seen: list[int] = []
    report = await book.replay("bulk", page=2, progress=seen.append)
    assert (report.events, report.jobs) == (7, 7)
    assert await book.event_count("bulk") == 7
    # Counted across the partitions, in order, ending at the whole log.
    assert seen == sorted(seen)
    assert seen[-1] == 7
    assert len(seen) >= 3  # at least one page per partition


async def test_the_throttle_is_shared_out_over_the_partitions(
    settings: Settings, book: Ledger, redis: Connection
) -> None:
    route = settings.route("bulk")
    state = Throttle(rate_per_s=0.003, burst=6, reason="max_replicas", detail="t", since_s=0.0)
    await throttle_record.Throttles(redis).apply(route, state, ttl_s=30, announce=True)
    for keys in parts_of(route):  # each partition's bucket holds a third
        raw = await redis.hgetall(keys.throttle)
        assert (float(raw[b"rate"]), int(raw[b"burst"])) == (0.001, 2)
    read = await throttle_record.Throttles(redis).read(route)
    assert read is not None
    assert (round(read.rate_per_s, 6), read.burst) == (0.003, 6)

    outcomes: list[str] = []
    refusals: list[Refused] = []
    for i in range(9):
        try:
            await book.admit(route, new_job(book, body=b"%d" % i), priority="high")
            outcomes.append("new")
        except Refused as e:
            outcomes.append("refused")
            refusals.append(e)
    assert outcomes.count("new") == 6  # the route's burst, two per partition (no reserve)
    assert all(r.cause == "capacity" and r.limit == 6 for r in refusals)
    assert sum(await lengths(redis)) == 6
    await throttle_record.Throttles(redis).lift(route)
    assert await throttle_record.Throttles(redis).read(route) is None


async def test_the_gateway_admits_and_answers_for_a_partitioned_route(
    settings: Settings,
) -> None:
    async with running_gateway(settings) as gw:
        ids = []
        for i in range(6):
            async with gw.http.post(gw.url("/bulk"), data=b"%d" % i) as r:
                assert r.status == 202
                ids.append((await r.json())["id"])
        assert len({i.partition(".")[0] for i in ids}) == PARTITIONS
        for job_id in ids:
            assert await gw.job_state(job_id) == "queued"
            async with gw.http.get(gw.url(f"/_tidegate/jobs/{job_id}")) as r:
                assert (await r.json())["route"] == "bulk"  # not the partition's tag
        async with gw.http.get(gw.admin_url("/status")) as r:
            body = await r.json()
        assert body["routes"]["bulk"]["waiting"] == 6
