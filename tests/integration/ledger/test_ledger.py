"""The job ledger: atomic append + projection, transitions, idempotency, replay.

Every test runs against a real redis-server and against fakeredis: the
in-memory fake, used for fast unit tests elsewhere, must behave the same.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis

from tests.conftest import make_settings
from tidegate.backoff import backoff_s, parse_retry_after
from tidegate.envelope import Failure, Job, Reply
from tidegate.errors import IdempotencyConflict, JobNotFound, TransitionRefused
from tidegate.keys import GROUP, RouteKeys, new_job_id
from tidegate.ledger import Ledger, backlog
from tidegate.ledger.calls import Promoted
from tidegate.ledger.groups import ensure_group
from tidegate.settings import Settings
from worker.retry_policy import settle


@pytest.fixture(params=["redis-server", "fakeredis"])
async def store(request: pytest.FixtureRequest, redis: Redis) -> AsyncIterator[Redis]:
    if request.param == "redis-server":
        yield redis
        return
    fake = fakeredis.FakeAsyncRedis()
    yield fake
    await fake.aclose()


@pytest.fixture
def book(store: Redis, settings: Settings) -> Ledger:
    return Ledger(store, settings.routes)


def new_job(body: bytes = b"payload", route: str = "orders") -> Job:
    return Job(id=new_job_id(route), route=route, method="POST", path="/" + route, body=body)


async def take(store: Redis, route: str = "orders") -> tuple[str, Job]:
    """Read the next entry as a worker would."""
    stream = RouteKeys(route).requests
    await ensure_group(store, stream, GROUP)
    reply: Any = await store.xreadgroup(GROUP, "c1", {stream: ">"}, count=1)
    entry_id, fields = reply[0][1][0]
    return entry_id.decode(), Job.from_fields(route, fields)


async def test_envelope_round_trips_through_admission_and_the_stream(
    book: Ledger, store: Redis, settings: Settings
) -> None:
    """What the admit script writes is what a worker reads back, byte for byte."""
    job = Job(
        id=new_job_id("orders"),
        route="orders",
        method="PUT",
        path="/orders/7",
        query="a=1&a=2",
        headers=(("X-A", "1"), ("X-A", "2")),
        body=b"\x00\xffbinary",
        attempt=3,
    )
    await book.admit(settings.route("orders"), job)
    _, back = await take(store)
    assert back.deadline_ms > 0  # set by the admit script from the route's deadline_s
    assert back == job._replace(deadline_ms=back.deadline_ms)
    assert back.header("x-a") == "1"


async def test_admit_appends_accepted_and_projects_queued(book: Ledger, settings: Settings) -> None:
    job = new_job()
    admitted = await book.admit(settings.route("orders"), job, None)
    assert (admitted.job_id, admitted.outcome) == (job.id, "new")
    projection = await book.projection(job.id)
    assert projection["state"] == "queued"
    assert int(projection["deadline_ms"]) > int(projection["accepted_at_ms"])
    assert [e["type"] for e in await book.events(job.id)] == ["accepted"]


async def test_idempotency_same_payload_same_job_other_payload_conflict(
    book: Ledger, settings: Settings
) -> None:
    route = settings.route("orders")
    first = await book.admit(route, new_job(b"a"), "key-1")
    again = await book.admit(route, new_job(b"a"), "key-1")
    assert (again.job_id, again.outcome) == (first.job_id, "duplicate")
    with pytest.raises(IdempotencyConflict, match=first.job_id):
        await book.admit(route, new_job(b"b"), "key-1")
    other = await book.admit(route, new_job(b"a"), "key-2")
    assert other.job_id != first.job_id


async def test_full_lifecycle_and_result(book: Ledger, store: Redis, settings: Settings) -> None:
    job = new_job()
    await book.admit(settings.route("orders"), job, None)
    entry_id, taken = await take(store)
    assert taken.id == job.id
    assert taken.deadline_ms > 0
    assert await book.start(taken, entry_id, "c1")
    assert (await book.projection(job.id))["state"] == "running"
    state = await book.finish(taken, entry_id, Reply(201, (("X-Y", "z"),), b"made"))
    assert state == "succeeded"
    assert await book.result(job.id) == Reply(201, (("X-Y", "z"),), b"made")
    groups: Any = await store.xinfo_groups(RouteKeys("orders").requests)
    assert groups[0]["pending"] == 0  # acknowledged together with the outcome
    kinds = [e["type"] for e in await book.events(job.id)]
    assert kinds == ["accepted", "started", "succeeded"]


async def test_retryable_failure_waits_its_backoff_then_dead_letters(
    book: Ledger, store: Redis, settings: Settings
) -> None:
    job = new_job()
    await book.admit(settings.route("orders"), job, None)
    keys = RouteKeys("orders")
    for attempt in (1, 2, 3):
        entry_id, taken = await take(store)
        started = await book.start(taken, entry_id, "c1")
        assert started is not None
        assert started.attempt == attempt  # counted by the projection
        t0 = 1_800_000_000.0  # fake time: the backoff is measured from it
        failure = Failure("upstream answered 503", True)
        outcome = settle(started, failure, settings.route("orders").worker, now_s=t0)
        state = await book.finish(started, entry_id, outcome)
        if attempt < 3:  # max_attempts is 3
            assert state == "queued"
            assert await store.zcard(keys.delayed) == 1
            promoted = await book.promote("orders", now_s=t0)
            assert promoted.moved == 0  # not due yet
            assert promoted.next_due_s is not None
            assert promoted.next_due_s > t0
            assert await book.promote("orders", now_s=t0 + 3600) == Promoted(
                moved=1, next_due_s=None
            )
    assert state == "dead_lettered"
    projection = await book.projection(job.id)
    assert projection["attempts"] == "3"
    assert projection["last_error"] == "upstream answered 503"
    result = await book.result(job.id)
    assert result is not None
    assert result.status == 502  # the final failure is a result too
    dead: Any = await store.xrange(keys.dead)
    assert [d[1][b"job"] for d in dead] == [job.id.encode()]
    kinds = [e["type"] for e in await book.events(job.id)]
    assert kinds[-2:] == ["failed", "dead_lettered"]


async def test_lost_worker_attempts_count_and_run_out(
    book: Ledger, store: Redis, settings: Settings
) -> None:
    """A worker that dies mid-job leaves a running job; each redelivery is an attempt."""
    job = new_job()
    await book.admit(settings.route("orders"), job, None)
    entry_id, taken = await take(store)
    for attempt in (1, 2, 3):  # started, then "killed": no finish
        started = await book.start(taken, entry_id, f"c{attempt}")
        assert started is not None
        assert started.attempt == attempt
    assert await book.start(taken, entry_id, "c4") is None
    projection = await book.projection(job.id)
    assert projection["state"] == "dead_lettered"
    assert "attempts exhausted" in projection["last_error"]
    assert await store.xlen(RouteKeys("orders").dead) == 1


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    rand = random.Random(7)
    delays = [backoff_s(n, 0.5, 60.0, rand=rand) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(60.0, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_s(1, 0.5, 60.0, retry_after_s=120.0) == 120.0
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 1445412480.0) == 10.0
    assert parse_retry_after("soon", 0.0) is None


async def test_terminal_job_accepts_no_second_end(
    book: Ledger, store: Redis, settings: Settings
) -> None:
    job = new_job()
    await book.admit(settings.route("orders"), job, None)
    entry_id, taken = await take(store)
    assert await book.start(taken, entry_id, "c1")
    assert await book.finish(taken, entry_id, Reply(200)) == "succeeded"
    # A second worker that got the same job (redelivery) must change nothing.
    assert not await book.start(taken, entry_id, "c2")
    late = settle(taken, Failure("late", False), settings.route("orders").worker)
    assert await book.finish(taken, entry_id, late) == "succeeded"
    kinds = [e["type"] for e in await book.events(job.id)]
    assert kinds.count("succeeded") == 1
    assert "failed" not in kinds
    assert (await book.result(job.id)) == Reply(200)


async def test_cancel_only_while_queued(book: Ledger, store: Redis, settings: Settings) -> None:
    queued, running = new_job(b"1"), new_job(b"2")
    await book.admit(settings.route("orders"), queued, None)
    await book.cancel(queued.id)
    assert (await book.projection(queued.id))["state"] == "cancelled"
    # The worker that reads the cancelled entry skips it (and acknowledges it).
    entry_id, taken = await take(store)
    assert not await book.start(taken, entry_id, "c1")

    await book.admit(settings.route("orders"), running, None)
    entry_id, taken = await take(store)
    assert await book.start(taken, entry_id, "c1")
    with pytest.raises(TransitionRefused) as info:
        await book.cancel(running.id)
    assert info.value.state == "running"
    with pytest.raises(JobNotFound):
        await book.cancel(new_job_id("orders"))
    with pytest.raises(JobNotFound):
        await book.projection("not-a-job-id")


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
