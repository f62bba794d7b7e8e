"""Compensation: work off the dead-letter stream, once per dead letter.

A job that finally failed is copied, with its envelope and the reason, to the
route's dead-letter stream. Compensators (one per worker process, in the
``compensators`` group) read it, call the executor's ``compensate`` (the
relay's ``compensate_path`` on the upstream, or a handler's compensate
function), and record ``compensated`` while acknowledging the dead letter, in
one atomic call.

A compensation that fails is left pending: after the visibility timeout any
compensator reclaims it and tries again, so compensation is retried until it
succeeds (alert on ``tidegate_worker_compensations_total{outcome="failed"}``).
It happens once: the ``compensated`` event is refused for a job that has it
already. A route with no compensation configured acknowledges its dead
letters without action; they stay in the stream for operators to inspect.
A partitioned route has a dead-letter stream per partition, read side by side.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tidegate import tracing
from tidegate.envelope import Failure, Job
from tidegate.errors import RedisUnavailable
from tidegate.keys import COMPENSATORS, parts_of
from tidegate.ledger import Ledger
from tidegate.settings import RouteSettings
from tidegate.tasks import run_together
from worker import spans
from worker.consumer import BLOCK_MS, Executor
from worker.group_reader import GroupReader
from worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class Compensator:
    def __init__(
        self,
        route: RouteSettings,
        ledger: Ledger,
        executor: Executor,
        name: str,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.metrics = metrics or WorkerMetrics()
        self.route = route
        self.ledger = ledger
        self.executor = executor
        self.readers = [
            GroupReader(
                ledger.store.group(keys.dead, COMPENSATORS, name),
                route.worker.visibility_timeout_s,
            )
            for keys in parts_of(route)
        ]
        self.compensated = 0
        self.failed = 0
        self.skipped = 0

    async def run(self, stop: asyncio.Event) -> None:
        await run_together([self._run(reader, stop) for reader in self.readers])

    async def _run(self, reader: GroupReader, stop: asyncio.Event) -> None:
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                for entry_id, fields in (await reader.fetch(16, stop_wait, BLOCK_MS)).entries:
                    try:
                        await self._one(reader, entry_id.decode(), fields)
                    except RedisUnavailable as e:  # left pending: reclaimed later
                        log.warning("compensator: Redis unreachable (%s)", e)
                        break
        finally:
            stop_wait.cancel()

    async def _one(
        self, reader: GroupReader, entry_id: str, fields: dict[bytes, bytes] | None
    ) -> None:
        if not fields or b"meta" not in fields:  # an unreadable entry: nothing to undo
            await reader.group.ack(entry_id)
            self.skipped += 1
            return
        job = Job.from_fields(self.route.name, fields)
        error = fields.get(b"error", b"").decode("utf-8", "replace")
        active = tracing.ACTIVE
        if active is None:
            outcome: Any = await self.executor.compensate(job, error)
        else:
            span = spans.compensation(active, job)
            with active.current(span):  # the relay's call is its child
                outcome = await self.executor.compensate(job, error)
                spans.compensated(span, outcome)
        counter = self.metrics.compensations
        if outcome is None:
            await reader.group.ack(entry_id)
            self.skipped += 1
            counter.labels(self.route.name, "none_configured").inc()
            return
        if isinstance(outcome, Failure):
            self.failed += 1
            counter.labels(self.route.name, "failed").inc()
            log.warning(
                "compensation of job %s failed (%s); retried after %.0f s",
                job.id,
                outcome.error,
                reader.visibility_ms / 1000,
            )
            return
        if await self.ledger.compensated(job, entry_id, outcome.status):
            self.compensated += 1
            counter.labels(self.route.name, "compensated").inc()
            log.info("job %s compensated (%d)", job.id, outcome.status)
