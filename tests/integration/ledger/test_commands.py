"""The ledger's commands: admission, idempotency, an attempt's start and end,
retries, cancellation; against redis-server and fakeredis alike.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from tests.integration.ledger.helpers import (
    needs_real_redis,
    new_job,
    take,
)
from tidegate.envelope import Failure, Job, Reply
from tidegate.errors import GroupMissing, IdempotencyConflict, JobNotFound, TransitionRefused
from tidegate.keys import GROUP, RouteKeys, new_job_id
from tidegate.ledger import Ledger
from tidegate.ledger.calls import Promoted
from tidegate.ledger.groups import ensure_group
from tidegate.settings import Settings
from worker.retry_policy import settle


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


async def test_take_reads_and_starts_what_waits_in_one_call(
    book: Ledger, store: Redis, settings: Settings
) -> None:
    """``take``: every waiting entry read and started; a cancelled job is
    acknowledged and skipped; an entry that is no envelope stays pending (the
    worker dead-letters it); nothing waiting is an empty list, at once."""
    needs_real_redis(
        store, "XREADGROUP inside a script answers another shape (one stream unwrapped)"
    )
    route, keys = settings.route("orders"), RouteKeys("orders")
    first, cancelled, last = new_job(b"1"), new_job(b"2"), new_job(b"3")
    for job in (first, cancelled):
        await book.admit(route, job, None)
    await book.cancel(cancelled.id)
    junk: Any = await store.xadd(keys.requests, {"not": "a job"})
    await book.admit(route, last, None)
    await store.xgroup_create(keys.requests, "workers", id="0")

    taken = await book.take("orders", "c1", 10)

    assert [t.state for t in taken] == ["running", "cancelled", "unreadable", "running"]
    assert [t.attempt for t in taken] == [1, None, None, 1]
    assert [Job.from_fields("orders", t.fields).id for t in (taken[0], taken[3])] == [
        first.id,
        last.id,
    ]
    for job in (first, last):
        projection = await book.projection(job.id)
        assert projection["state"] == "running"
        assert projection["attempts"] == "1"
        started = [e for e in await book.events(job.id) if e["type"] == "started"]
        assert [(e["attempt"], e["consumer"]) for e in started] == [("1", "c1")]
    pending: Any = await store.xpending_range(keys.requests, "workers", "-", "+", 10)
    assert sorted(p["message_id"] for p in pending) == sorted(
        [taken[0].entry_id, junk, taken[3].entry_id]
    )
    assert await book.take("orders", "c1", 10) == []


async def test_take_counts_attempts_like_start(
    book: Ledger, store: Redis, settings: Settings
) -> None:
    """An entry redelivered past its attempts is dead-lettered by ``take`` as by ``start``."""
    needs_real_redis(
        store, "XREADGROUP inside a script answers another shape (one stream unwrapped)"
    )
    job = new_job()
    await book.admit(settings.route("orders"), job, None)
    entry_id, taken = await take(store)
    for attempt in (1, 2, 3):
        assert await book.start(taken, entry_id, f"c{attempt}")
    await store.xadd(
        RouteKeys("orders").requests, {b"job": job.id, b"meta": taken.meta(), b"body": taken.body}
    )

    (again,) = await book.take("orders", "c4", 5)

    assert (again.attempt, again.state) == (None, "dead_lettered")
    assert (await book.projection(job.id))["state"] == "dead_lettered"
    assert await store.xlen(RouteKeys("orders").dead) == 1


async def test_take_without_a_group_is_group_missing(book: Ledger, store: Redis) -> None:
    needs_real_redis(
        store, "XREADGROUP inside a script answers another shape (one stream unwrapped)"
    )
    await store.xadd(RouteKeys("orders").requests, {"x": "1"})
    with pytest.raises(GroupMissing):
        await book.take("orders", "c1", 5)


async def test_each_script_of_a_job_reads_its_projection_once(
    ledger: Ledger, redis: Redis, settings: Settings
) -> None:
    """Admission, start and end each read the projection in one HMGET, not
    one HGET per field: in a script every redis.call costs about what its
    command does. (Admission's other HMGET reads the route's throttle.)"""
    route = settings.route("orders")
    await ensure_group(redis, RouteKeys("orders").requests, GROUP)
    await ledger.admit(route, new_job())  # the scripts are in the cache from here on
    await ledger.take("orders", "c1", 1)
    await redis.config_resetstat()
    job = new_job()
    await ledger.admit(route, job)
    (taken,) = await ledger.take("orders", "c1", 1)
    assert taken.attempt == 1
    await ledger.finish(job, taken.entry_id.decode(), Reply(200, (), b"ok"))
    stats: dict[str, Any] = await redis.info("commandstats")
    calls = {
        name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
        for name in ("hget", "hexists", "hmget")
    }
    assert calls == {"hget": 0, "hexists": 0, "hmget": 4}
    assert (await ledger.projection(job.id))["state"] == "succeeded"
