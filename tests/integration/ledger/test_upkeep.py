"""The ledger's upkeep: replay from the event log, the reconciler, trimming;
against redis-server and fakeredis alike.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from tests.conftest import make_settings
from tests.integration.ledger.helpers import (
    needs_real_redis,
    new_job,
    take,
)
from tidegate.envelope import Failure, Reply
from tidegate.keys import GROUP, RouteKeys
from tidegate.ledger import Ledger, backlog
from tidegate.settings import Settings
from worker.retry_policy import settle


async def test_replay_rebuilds_every_projection_exactly(
    book: Ledger, store: Redis, settings: Settings
) -> None:
    route = settings.route("orders")
    jobs = [new_job(str(i).encode()) for i in range(30)]
    for job in jobs:
        await book.admit(route, job, None)
    for i in range(20):
        entry_id, taken = await take(store)
        assert await book.start(taken, entry_id, "c1")
        outcome = Reply(200) if i % 3 else Failure("503", True)
        await book.finish(taken, entry_id, settle(taken, outcome, route.worker))
    await book.cancel(jobs[-1].id)
    before = {job.id: await book.projection(job.id) for job in jobs}
    ttls = {job.id: await store.pttl(RouteKeys("orders").job(job.id)) for job in jobs}
    assert {p["state"] for p in before.values()} == {"queued", "succeeded", "cancelled"}

    for job in jobs:
        await store.delete(RouteKeys("orders").job(job.id))
    report = await book.replay("orders")
    assert (report.jobs, report.refused) == (30, 0)
    after = {job.id: await book.projection(job.id) for job in jobs}
    assert after == before
    for job in jobs:  # finished jobs expire at the same moment as before
        ttl = await store.pttl(RouteKeys("orders").job(job.id))
        assert (ttl == -1) == (ttls[job.id] == -1)
        assert abs(ttl - ttls[job.id]) < 5000


async def test_replay_does_not_resurrect_expired_jobs(
    book: Ledger, store: Redis, settings: Settings
) -> None:
    short = Ledger(
        store,
        [
            settings.route("orders").__class__(
                **{**settings.route("orders").__dict__, "result_ttl_s": 1}
            )
        ],
    )
    job = new_job()
    await short.admit(short.routes["orders"], job, None)
    entry_id, taken = await take(store)
    await short.start(taken, entry_id, "c1")
    await short.finish(taken, entry_id, Reply(200))
    # Rewrite history: pretend the job ended long ago by replaying with a TTL
    # that has already run out relative to the logged event times.
    key = RouteKeys("orders").job(job.id)
    await store.delete(key)
    events: Any = await store.xrange(RouteKeys("orders").events)
    assert len(events) == 3
    await store.delete(RouteKeys("orders").events)
    for event_id, fields in events:
        old_id = (
            f"{int(event_id.decode().split('-')[0]) - 10_000}-{event_id.decode().split('-')[1]}"
        )
        await store.xadd(RouteKeys("orders").events, fields, id=old_id)
    await short.replay("orders")
    assert not await store.exists(key)


async def test_reconciler_expires_overdue_jobs_once(
    book: Ledger, store: Redis, settings: Settings
) -> None:
    route = settings.route("orders")
    waiting, running, done = new_job(b"1"), new_job(b"2"), new_job(b"3")
    for job in (waiting, running, done):
        await book.admit(route, job, None)
    entry_id, taken = await take(store)  # waiting's entry: left alone below
    entry_id, taken = await take(store)
    assert await book.start(taken, entry_id, "c1") is not None  # running
    entry_id, taken = await take(store)
    started = await book.start(taken, entry_id, "c1")
    assert started is not None
    await book.finish(started, entry_id, Reply(200))  # done
    keys = RouteKeys("orders")
    assert await store.zcard(keys.deadlines) == 2  # ended jobs leave the index

    assert not await book.reconcile("orders")  # nothing overdue yet
    later = time.time() + route.deadline_s + 1
    assert await book.reconcile("orders", now_s=later) == {"expired": 2}
    assert not await book.reconcile("orders", now_s=later)  # once
    states = {j.id: (await book.projection(j.id))["state"] for j in (waiting, running, done)}
    assert states == {waiting.id: "expired", running.id: "expired", done.id: "succeeded"}
    assert await store.zcard(keys.deadlines) == 0
    # The worker still holding the running job cannot end it a second time.
    assert await book.finish(taken._replace(id=running.id), entry_id, Reply(200)) == "expired"


async def test_requeue_policy_redoes_lost_work_then_expires(store: Redis) -> None:
    settings = make_settings("redis://unused", worker={"on_deadline": "requeue", "max_requeues": 1})
    book, route, keys = (
        Ledger(store, settings.routes),
        settings.route("orders"),
        RouteKeys("orders"),
    )
    held, lost, gone, waiting = (new_job(str(i).encode()) for i in range(4))
    for job in (held, lost, gone, waiting):
        await book.admit(route, job, None)
    for job in (held, lost, gone):  # all three delivered and started
        entry_id, taken = await take(store)
        assert taken.id == job.id
        assert await book.start(taken, entry_id, "c1") is not None
        if job is not held:  # the pending entry vanishes (a failover lost it)
            await store.xack(keys.requests, GROUP, entry_id)
        if job is gone:  # ... together with the entry itself
            await store.xdel(keys.requests, entry_id)
    before = await store.xlen(keys.requests)

    later = time.time() + route.deadline_s + 1
    assert await book.reconcile("orders", now_s=later) == {"requeued": 3, "expired": 1}
    states = {j.id: await book.projection(j.id) for j in (held, lost, gone, waiting)}
    assert states[held.id]["state"] == "running"  # its consumer still holds it: new deadline
    assert states[waiting.id]["state"] == "queued"  # still to be delivered: new deadline
    assert states[lost.id]["state"] == "queued"  # put back in the stream
    assert states[gone.id]["state"] == "expired"
    assert "request is gone" in states[gone.id]["last_error"]
    assert await store.xlen(keys.requests) == before + 1
    _, first = await take(store)
    entry_id, again = await take(store)
    assert first.id == waiting.id  # delivered in order: the copy joined the tail
    assert again.id == lost.id
    assert again.body == lost.body
    assert states[lost.id]["entry"] == entry_id
    assert [e["type"] for e in await book.events(lost.id)][-1] == "requeued"

    # Past the new deadlines, the requeues are used up: they expire.
    much_later = later + route.deadline_s + 1
    assert await book.reconcile("orders", now_s=much_later) == {"expired": 3}
    for job in (held, lost, waiting):
        projection = await book.projection(job.id)
        assert projection["state"] == "expired"
        assert "2 times" in projection["last_error"]
    # Replaying the log gives the same projections.
    await book.replay("orders")
    assert (await book.projection(lost.id))["requeues"] == "1"


async def test_trim_keeps_what_is_needed_and_the_lag_exact(
    book: Ledger, store: Redis, settings: Settings
) -> None:
    route = settings.route("orders")
    jobs = [new_job(str(i).encode()) for i in range(10)]
    for job in jobs:
        await book.admit(route, job, None)
    keys = RouteKeys("orders")
    for i in range(6):  # 5 done, the 6th left pending (its worker died)
        entry_id, taken = await take(store)
        started = await book.start(taken, entry_id, "c1")
        assert started is not None
        if i < 5:
            await book.finish(started, entry_id, Reply(200))
    report = await book.trim("orders")
    assert report.requests == 5  # the acknowledged ones before the pending one
    assert await store.xlen(keys.requests) == 5  # 1 pending + 4 never delivered
    measured = await backlog.measure(store, "orders")
    assert (measured.waiting, measured.pending, measured.exact) == (4, 1, True)
    assert measured.source == "lag"
    # The oldest waiting entry is the 7th admitted (the first never delivered).
    seventh: Any = await store.xrange(keys.requests, "-", "+", count=2)
    assert measured.oldest_waiting_ms == int(seventh[1][0].decode().split("-")[0])
    age = measured.oldest_age_s(time.time() + 5)
    assert age is not None
    assert age >= 5
    assert (await book.trim("orders")).requests == 0
    # Events go once they are older than result_ttl_s + deadline_s.
    far = time.time() + route.result_ttl_s + route.deadline_s + 10
    logged = await store.xlen(keys.events)
    assert (await book.trim("orders", now_s=far)).events == logged
    assert await store.xlen(keys.events) == 0


async def test_the_scalers_one_call_sample_reads_what_measure_and_counters_read(
    store: Redis,
) -> None:
    """``backlog.sampled`` (one script call) against ``measure`` and
    ``counters`` (a round trip per read), in every state a route's stream can
    be in: none yet, no group, a known lag, a lag Redis cannot know."""
    needs_real_redis(store, "XINFO inside a script answers another shape")
    keys = RouteKeys("orders")

    async def agree() -> None:
        measured, counted = await backlog.sampled(store, "orders")
        assert measured == await backlog.measure(store, "orders")
        assert counted == await backlog.counters(store, "orders")

    await agree()  # no stream
    ids = [await store.xadd(keys.requests, {"job": f"orders.{i}"}) for i in range(5)]
    await store.incrby(keys.refused, 3)
    await agree()  # entries, no group
    await store.xgroup_create(keys.requests, GROUP, id="0")
    await agree()  # a known lag of 5
    reply: Any = await store.xreadgroup(GROUP, "c", {keys.requests: ">"}, count=2)
    assert len(reply[0][1]) == 2
    await agree()  # 3 waiting, 2 pending
    await store.xdel(keys.requests, ids[3])  # an undelivered entry deleted: lag unknown
    measured, counted = await backlog.sampled(store, "orders")
    assert (measured.source, measured.waiting) == ("counted", 2)
    assert (counted.added_total, counted.refused_total) == (5, 3)
    await agree()
