"""The consumer runtime: read a route's stream in its group, run jobs, record outcomes.

One reader loop per partition of the route (one, unless the route has
``partitions``) asks XREADGROUP for entries and starts a task per entry.
Step 1 below is done by the read's own round trip: a blocking read carries
``Ledger.start_read`` right behind it on its connection, which starts what
the read delivered (``groups.ConsumerGroup.read_then``); when the last read
filled its count, entries likely wait, and the loop takes them with
``Ledger.take`` instead (read and start in one call that never blocks; when
that finds fewer, it blocks again). Entries taken over from a lost consumer,
or read where the start could not ride along, are started one by one. The
loops share the process's ``concurrency``: each asks for its share of the free
slots (with P partitions, ceil(free / P), so a read blocked on a quiet
partition holds no slot a busy one could use; at most P - 1 entries beyond
``concurrency`` can arrive at once). Each task:

1. ``start``: appends ``started`` unless the job is already finished or
   cancelled; then the entry is acknowledged and skipped (delivery is at least
   once, effects are once);
2. runs the executor (relay or handler);
3. ``finish``: stores the result, appends the outcome event, re-enqueues a
   retryable failure and XACKs, all in one atomic call, shielded from
   cancellation so a shutdown cannot cut it in half.

Redis going away is not fatal: the reader backs off (0.1 s doubling to 5 s)
and resumes; an outcome that cannot be recorded is retried until it can or the
process stops (the entry then stays pending for another consumer).

Stopping (SIGTERM): the reader stops asking for work, jobs in flight get
``grace_s`` to finish; whatever is still running then is abandoned unacked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from prometheus_client import Counter

from tidegate import log_context
from tidegate.envelope import Failure, Job, Reply
from tidegate.errors import RedisUnavailable, TidegateError
from tidegate.keys import GROUP, RouteKeys, parts_of
from tidegate.ledger import Ledger, liveness
from tidegate.ledger.calls import Taken
from tidegate.ledger.groups import ConsumerGroup
from tidegate.settings import RouteSettings
from tidegate.stages import since_ms
from tidegate.tasks import run_together, stop_if_cancelled, stop_tasks
from worker.group_reader import MAX_BACKOFF_S, GroupReader
from worker.metrics import WorkerMetrics
from worker.retry_policy import settle

log = logging.getLogger(__name__)

BLOCK_MS = 1000
ALIVE_EVERY_S = 5.0
BUSY_REPORT_MIN_S = 1.0
"""Going idle or busy is reported at once, but at most once per this long."""
MAINTAIN_EVERY_S = 5.0
PROMOTE_EVERY_S = 1.0
PROMOTE_MOST = 100


class Executor(Protocol):
    """What a job does: relay to a service, or run a handler."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def __call__(self, job: Job) -> Reply | Failure: ...
    async def compensate(self, job: Job, error: str) -> Reply | Failure | None:
        """Undo what a dead-lettered job may have done; None: not configured."""
        ...


def consumer_name() -> str:
    """Unique per process: host, pid and a random suffix (pids repeat in pods)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


async def _until_recorded(what: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
    delay_s = 0.1
    while True:
        try:
            return await attempt()
        except RedisUnavailable as e:
            stop_if_cancelled(e)  # redis-py may turn our cancellation into this error
            log.warning("cannot %s yet (%s); retrying in %.1f s", what, e, delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, MAX_BACKOFF_S)


class Consumer:
    """Drains one route's stream with one executor."""

    def __init__(
        self,
        route: RouteSettings,
        ledger: Ledger,
        executor: Executor,
        *,
        concurrency: int | None = None,
        name: str | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.route = route
        self.ledger = ledger
        self.executor = executor
        self.concurrency = concurrency or route.worker.concurrency
        self.name = name or consumer_name()
        self.parts: tuple[RouteKeys, ...] = parts_of(route)
        self.in_flight: dict[asyncio.Task[None], tuple[int, str]] = {}
        """Jobs running, with their partition and stream entry id (the
        heartbeat keeps those)."""
        self.processed = 0
        """Entries fully handled (finished or skipped) by this consumer."""
        self.taken = 0
        """Entries read and started in one call (``Ledger.take``), of those."""
        self.metrics = metrics or WorkerMetrics()
        self.metrics.start_at_zero(route.name)
        self._stage = {
            stage: self.metrics.stages.labels(route.name, stage)
            for stage in ("queued", "started", "upstream", "finished")
        }
        """This route's children of the stage histogram, looked up once (hot path)."""
        self._in_flight = self.metrics.in_flight.labels(route.name)
        self._attempts: dict[str, Counter] = {}
        self._recording: set[asyncio.Task[Any]] = set()
        """Outcomes being recorded (shielded from the job's cancellation)."""
        """This route's children of the attempts counter, by outcome, as they occur."""
        self.readers = [
            GroupReader(
                ConsumerGroup(ledger.redis, keys.requests, GROUP, self.name),
                route.worker.visibility_timeout_s,
            )
            for keys in self.parts
        ]

        self._busy_changed = asyncio.Event()
        """Set when the jobs in flight go from none to some or back."""
        self._promote_at = [0.0] * len(self.parts)
        """Per partition: when to look for due retries next (unix s)."""
        self._starts = [
            ledger.start_read(route.name, self.name, 0, "0-0", partition=p)
            for p in range(len(self.parts))
        ]
        """Per partition: the starts sent behind each blocking read, built
        once; before a read its ``count`` is set, and ``after_id`` follows
        the newest entry delivered to this consumer by a read of new entries
        (the call starts only those after it)."""

    @property
    def reclaimed(self) -> int:
        """Entries this consumer took over from others that held them too long."""
        return sum(reader.reclaimed for reader in self.readers)

    async def run(self, stop: asyncio.Event, *, grace_s: float = 25.0) -> None:
        """Consume until ``stop`` is set, then drain within ``grace_s``."""
        await self.executor.open()
        background = [
            asyncio.create_task(self._heartbeat(), name=f"heartbeat-{self.name}"),
            asyncio.create_task(self._alive(), name=f"alive-{self.name}"),
            asyncio.create_task(self._maintain(), name=f"maintain-{self.name}"),
        ]
        try:
            await run_together([self._read_loop(p, stop) for p in range(len(self.parts))])
        finally:
            await self._drain(grace_s)
            await stop_tasks(background)
            with contextlib.suppress(RedisUnavailable):
                await liveness.clear(self.ledger.redis, self.route.name, self.name)
            await self.executor.close()

    async def _read_loop(self, partition: int, stop: asyncio.Event) -> None:
        reader, starts, loops = self.readers[partition], self._starts[partition], len(self.readers)
        stop_wait = asyncio.ensure_future(stop.wait())
        waiting = False  # the last read filled its count: more entries likely wait
        try:
            while not stop.is_set():
                free = self.concurrency - len(self.in_flight)
                if free <= 0:
                    await asyncio.wait(
                        {stop_wait, *self.in_flight}, return_when=asyncio.FIRST_COMPLETED
                    )
                    continue
                block_ms = await self._promote_due(partition)
                want = -(-free // loops)
                if waiting and not reader.reclaim_due():
                    taken = await self._take(partition, want)
                    waiting = len(taken) >= want
                    self.taken += len(taken)
                    for item in taken:
                        self._spawn(partition, item.entry_id, item.fields, item)
                    if taken:
                        starts.after_id = taken[-1].entry_id.decode()
                        continue
                reclaimed_before = reader.reclaimed
                starts.count = want
                fetched = await reader.fetch(want, stop_wait, block_ms, starts)
                waiting = len(fetched.entries) >= want
                if reader.reclaimed > reclaimed_before:
                    self.metrics.reclaims.labels(self.route.name).inc(
                        reader.reclaimed - reclaimed_before
                    )
                if fetched.fresh and fetched.entries:
                    starts.after_id = fetched.entries[-1][0].decode()
                started = fetched.started or {}
                for entry_id, fields in fetched.entries:
                    verdict = started.get(entry_id)
                    self.taken += verdict is not None
                    self._spawn(
                        partition,
                        entry_id,
                        fields,
                        None
                        if verdict is None
                        else Taken(entry_id, fields or {}, verdict.attempt, verdict.state),
                    )
        finally:
            stop_wait.cancel()

    async def _take(self, partition: int, count: int) -> list[Taken]:
        """Entries read and started in one call; none when that fails (the
        blocking read that follows meets the failure and rides it out)."""
        try:
            return await self.ledger.take(self.route.name, self.name, count, partition=partition)
        except TidegateError as e:
            stop_if_cancelled(e)
            log.debug("taking entries failed (%s); reading instead", e)
            return []

    def _spawn(
        self,
        partition: int,
        entry_id: bytes,
        fields: dict[bytes, bytes] | None,
        taken: Taken | None = None,
    ) -> None:
        task = asyncio.create_task(self._process(partition, entry_id, fields, taken))
        if not self.in_flight:
            self._busy_changed.set()
        self.in_flight[task] = (partition, entry_id.decode())
        task.add_done_callback(self._done)

    async def _promote_due(self, partition: int) -> int:
        """Promote the partition's retries that are due, when one may be; the
        longest the next read may block (ms), so it wakes for the next retry.

        Not before every read: one script call per read would add a round
        trip to every job. It runs when a retry this process parked or saw
        waiting is due, and at least every ``PROMOTE_EVERY_S`` (retries
        parked by other workers)."""
        now = time.time()
        if now >= self._promote_at[partition]:
            try:
                promoted = await self.ledger.promote(self.route.name, partition=partition)
            except RedisUnavailable:  # the fetch after this meets the outage and backs off
                self._promote_at[partition] = now + PROMOTE_EVERY_S
                return BLOCK_MS
            soon = now if promoted.moved >= PROMOTE_MOST else now + PROMOTE_EVERY_S
            due = promoted.next_due_s
            self._promote_at[partition] = soon if due is None else min(soon, due)
        wait_ms = int((self._promote_at[partition] - time.time()) * 1000)
        return max(10, min(BLOCK_MS, wait_ms))

    def _parked(self, partition: int, due_ms: int) -> None:
        """A retry this process parked: promote it when it is due."""
        self._promote_at[partition] = min(self._promote_at[partition], due_ms / 1000)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.pop(task, None)
        if not self.in_flight:
            self._busy_changed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("job task crashed", exc_info=task.exception())

    async def _heartbeat(self) -> None:
        """Keep the entries of running jobs from looking abandoned.

        XCLAIM of our own entries with JUSTID resets their idle time, so a job
        that runs longer than the visibility timeout is not reclaimed by
        another worker while this one is still on it.
        """
        while True:
            await asyncio.sleep(self.readers[0].keep_every_s)
            try:
                for partition, reader in enumerate(self.readers):
                    held = [entry for p, entry in self.in_flight.values() if p == partition]
                    await reader.group.keep(held)
            except RedisUnavailable as e:
                stop_if_cancelled(e)
                log.warning("heartbeat failed (%s); jobs may be reclaimed elsewhere", e)

    async def _alive(self) -> None:
        """Refresh this process's record: alive (``tidegate worker --check``) and
        how busy (the scaler scales in idle pods first).

        A record older than ``liveness.RECORD_TTL_S`` counts as gone, so a hung
        or killed worker disappears on its own. It is refreshed every
        ``ALIVE_EVERY_S``, and as soon as the worker goes idle or busy (at most
        once per ``BUSY_REPORT_MIN_S``: at low load that flips with every job).
        """
        while True:
            self._busy_changed.clear()
            try:
                await liveness.refresh(
                    self.ledger.redis, self.route.name, self.name, len(self.in_flight)
                )
            except RedisUnavailable as e:  # out of memory included: try again later
                stop_if_cancelled(e)
            await asyncio.sleep(BUSY_REPORT_MIN_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._busy_changed.wait(), ALIVE_EVERY_S - BUSY_REPORT_MIN_S)

    async def _maintain(self) -> None:
        """Reconcile overdue jobs and trim the route's streams, now and then.

        Every worker does it; both are safe to run in many places at once (a
        job expires once; trimming to the same bound twice trims nothing).
        """
        route = self.route.name
        while True:
            await asyncio.sleep(MAINTAIN_EVERY_S)
            try:
                actions = await self.ledger.reconcile(route)
                trimmed = await self.ledger.trim(route)
            except RedisUnavailable as e:
                stop_if_cancelled(e)
                continue
            for action, count in actions.items():
                self.metrics.reconciled.labels(route, action).inc(count)
                log.warning("%s %d job(s) of route %s past their deadline", action, count, route)
            log.debug("trimmed %s", trimmed)

    async def _process(
        self,
        partition: int,
        entry_id_raw: bytes,
        fields: dict[bytes, bytes] | None,
        taken: Taken | None = None,
    ) -> None:
        """Run one entry: read by a plain read (its start recorded here), or
        taken (started by the same call that read it)."""
        entry_id = entry_id_raw.decode()
        log_context.ROUTE.set(self.route.name)  # this task's own context: its log lines
        try:
            job = Job.from_fields(self.route.name, fields or {})
            if taken is not None and taken.state == "unreadable":
                raise ValueError("the take script found no job, meta or body")
        except (KeyError, ValueError, TypeError) as e:
            await self._poison(partition, entry_id, fields, f"not a job envelope: {e!r}")
            return
        log_context.JOB.set(job.id)
        taken_at = time.time()
        self._stage["queued"].observe(since_ms(int(entry_id.partition("-")[0]), taken_at))
        if taken is None:
            started = await _until_recorded(
                "record a start", lambda: self.ledger.start(job, entry_id, self.name)
            )
        else:
            started = None if taken.attempt is None else job._replace(attempt=taken.attempt)
        self._stage["started"].observe(time.time() - taken_at)
        if started is not None:
            await self._execute(started, entry_id, partition)
        else:
            self.metrics.skipped.labels(self.route.name).inc()
        self.processed += 1

    async def _execute(self, job: Job, entry_id: str, partition: int) -> None:
        in_flight = self._in_flight
        in_flight.inc()
        started = time.perf_counter()
        try:
            outcome = await self.executor(job)
        except Exception as e:  # an executor bug must not strand the entry
            log.exception("executor failed on job %s", job.id)
            outcome = Failure(f"executor crashed: {e!r}", True)
        else:
            limit = self.route.worker.max_result_bytes
            if isinstance(outcome, Reply) and len(outcome.body) > limit:
                outcome = Failure.result_too_large(
                    limit
                )  # a handler's answer, held to the relay's limit
        finally:
            in_flight.dec()
            upstream_s = time.perf_counter() - started
            self._stage["upstream"].observe(upstream_s)
        settled = replace(settle(job, outcome, self.route.worker), upstream_s=upstream_s)
        finishing = time.perf_counter()
        # Shielded: a job cancelled now (the drain's grace ran out) still gets
        # its outcome recorded while Redis answers; ``_drain`` gives up on
        # records that cannot get through, and their entries are redelivered.
        recording = asyncio.create_task(
            _until_recorded("record an outcome", lambda: self.ledger.finish(job, entry_id, settled))
        )
        self._recording.add(recording)
        recording.add_done_callback(self._recording.discard)
        state = await asyncio.shield(recording)
        self._stage["finished"].observe(time.perf_counter() - finishing)
        if state == "queued" and settled.retry_due_ms is not None:
            self._parked(partition, settled.retry_due_ms)
        self._attempt_ended(state)
        log.debug("job %s attempt %d: %s", job.id, job.attempt, state)

    def _attempt_ended(self, state: str) -> None:
        """Count an attempt by the job's state after it (``queued``: retried)."""
        outcome = "retried" if state == "queued" else state
        counter = self._attempts.get(outcome)
        if counter is None:
            counter = self._attempts[outcome] = self.metrics.attempts.labels(
                self.route.name, outcome
            )
        counter.inc()
        if state == "dead_lettered":
            self.metrics.dead_letters.labels(self.route.name).inc()

    async def _poison(
        self, partition: int, entry_id: str, fields: dict[bytes, bytes] | None, why: str
    ) -> None:
        """Move an unreadable entry to the dead-letter stream, so it cannot loop."""
        keys, reader = self.parts[partition], self.readers[partition]
        log.error("entry %s on %s: %s; dead-lettered", entry_id, keys.requests, why)
        dead: dict[Any, Any] = {"entry": entry_id, "error": why}
        for k, v in (fields or {}).items():
            dead[b"orig_" + k] = v

        await _until_recorded(
            "dead-letter an entry",
            lambda: reader.group.move(entry_id, keys.dead, dead),
        )
        self.processed += 1

    async def _drain(self, grace_s: float) -> None:
        """Let the jobs in flight finish within ``grace_s``; then stop what is
        left, outcomes still waiting for Redis included (unacknowledged, so
        redelivered: at least once holds)."""
        if self.in_flight:
            log.info("draining %d job(s) in flight (up to %.0f s)", len(self.in_flight), grace_s)
            _, still = await asyncio.wait(set(self.in_flight), timeout=grace_s)
            if still:
                log.warning("%d job(s) left unacknowledged; they will be redelivered", len(still))
                await stop_tasks(still)
        if self._recording:
            log.warning(
                "%d outcome(s) not recorded (Redis did not take them); their jobs "
                "will be redelivered",
                len(self._recording),
            )
            await stop_tasks(set(self._recording))
