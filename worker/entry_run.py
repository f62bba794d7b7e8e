"""Running one entry of a route's stream: start, execute, finish, count.

The part of ``worker.consumer`` that one job goes through, from the entry
as read to its outcome recorded: its start (unless the read started it),
the executor's call, the outcome settled by the retry policy and recorded
(shielded: a job cancelled by the drain still gets its outcome written while
Redis answers), and the metrics. An entry that is not a job envelope is
dead-lettered at once, so it cannot loop. A record Redis cannot take yet is
retried with backoff (``_until_recorded``) until it can, or the drain stops it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import Counter, Gauge, Histogram

from tidegate import log_context, tracing
from tidegate.envelope import Failure, Job, Reply
from tidegate.errors import RedisUnavailable
from tidegate.keys import RouteKeys
from tidegate.ledger import Ledger
from tidegate.ledger.calls import Taken
from tidegate.settings import RouteSettings
from tidegate.stages import since_ms
from tidegate.tasks import stop_if_cancelled
from worker import spans
from worker.group_reader import MAX_BACKOFF_S, GroupReader
from worker.metrics import WorkerMetrics
from worker.retry_policy import settle

if TYPE_CHECKING:
    from tidegate.tracing import Span

log = logging.getLogger(__name__)


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


class Executor(Protocol):
    """What a job does: relay to a service, or run a handler."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def __call__(self, job: Job) -> Reply | Failure: ...
    async def compensate(self, job: Job, error: str) -> Reply | Failure | None:
        """Undo what a dead-lettered job may have done; None: not configured."""
        ...


class EntryRunner:
    """What ``Consumer`` runs each entry with; the attributes are the consumer's."""

    route: RouteSettings
    ledger: Ledger
    executor: Executor
    name: str
    parts: tuple[RouteKeys, ...]
    readers: list[GroupReader]
    metrics: WorkerMetrics
    processed: int
    _stage: dict[str, Histogram]
    _in_flight: Gauge
    _attempts: dict[str, Counter]
    _recording: set[asyncio.Task[Any]]

    def _parked(self, partition: int, due_ms: int) -> None:
        raise NotImplementedError

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
        active = tracing.ACTIVE
        if active is None:
            await self._attempt(job, entry_id, partition, None)
            return
        span = spans.process(active, job)
        with active.current(span):  # the relay's call and a handler's spans are its children
            await self._attempt(job, entry_id, partition, span)

    async def _attempt(self, job: Job, entry_id: str, partition: int, span: Span | None) -> None:
        """One attempt: the executor's call, then its outcome recorded;
        ``span``: the attempt's (tracing on)."""
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
        finish = None if span is None else spans.finish(self.route.name)
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
        if span is not None and finish is not None:
            finish.end()
            spans.processed(span, outcome, state)
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
