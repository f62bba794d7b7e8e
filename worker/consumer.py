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
from typing import Any

from prometheus_client import Counter

from tidegate.errors import RedisUnavailable, TidegateError
from tidegate.keys import GROUP, RouteKeys, parts_of
from tidegate.ledger import Ledger
from tidegate.ledger.calls import Taken
from tidegate.settings import RouteSettings
from tidegate.tasks import run_together, stop_if_cancelled, stop_tasks
from worker.due_retries import DueRetries
from worker.entry_run import EntryRunner, Executor
from worker.group_reader import GroupReader
from worker.metrics import WorkerMetrics
from worker.upkeep_loops import Upkeep

__all__ = ["Consumer", "Executor", "consumer_name"]

log = logging.getLogger(__name__)

BLOCK_MS = 1000
PROMOTE_EVERY_S = 1.0
PROMOTE_MOST = 100


def consumer_name() -> str:
    """Unique per process: host, pid and a random suffix (pids repeat in pods)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Consumer(EntryRunner, Upkeep):
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
        """This route's children of the attempts counter, by outcome, as they occur."""
        self._recording: set[asyncio.Task[Any]] = set()
        """Outcomes being recorded (shielded from the job's cancellation)."""
        self.readers = [
            GroupReader(
                ledger.store.group(keys.requests, GROUP, self.name),
                route.worker.visibility_timeout_s,
            )
            for keys in self.parts
        ]

        self._busy_changed = asyncio.Event()
        """Set when the jobs in flight go from none to some or back."""
        self._promote_at = [0.0] * len(self.parts)
        """Per partition: when to look for due retries next (unix s)."""
        self._due_retries = DueRetries(len(self.parts), self._promote)
        """Timers at the retries this process parks (promoted while a read blocks)."""
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
            await self._due_retries.close()
            await stop_tasks(background)
            with contextlib.suppress(RedisUnavailable):
                await self.ledger.store.liveness.clear(self.route.name, self.name)
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
                await self._promote(partition)
            except RedisUnavailable:  # the fetch after this meets the outage and backs off
                self._promote_at[partition] = now + PROMOTE_EVERY_S
                return BLOCK_MS
        wait_ms = int((self._promote_at[partition] - time.time()) * 1000)
        return max(10, min(BLOCK_MS, wait_ms))

    async def _promote(self, partition: int) -> float | None:
        """Promote the partition's due retries now (the read loop, or the
        timer of a retry this process parked); when the next one waiting is
        due (unix s), or None."""
        now = time.time()
        promoted = await self.ledger.promote(self.route.name, partition=partition)
        soon = now if promoted.moved >= PROMOTE_MOST else now + PROMOTE_EVERY_S
        due = promoted.next_due_s
        self._promote_at[partition] = soon if due is None else min(soon, due)
        return due

    def _parked(self, partition: int, due_ms: int) -> None:
        """A retry this process parked: promote it when it is due, even while
        the partition's read is blocked (``due_retries``)."""
        self._promote_at[partition] = min(self._promote_at[partition], due_ms / 1000)
        self._due_retries.parked(partition, due_ms / 1000)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.pop(task, None)
        if not self.in_flight:
            self._busy_changed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("job task crashed", exc_info=task.exception())

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
