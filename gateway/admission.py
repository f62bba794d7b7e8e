"""Admission: coalesce concurrent admissions into one Redis round trip.

Admission runs the ``admit`` Lua script (idempotency check, XADD of the
envelope, the ``accepted`` event and its projection). Awaiting a call per
request would cost a round trip per request; instead callers queue their job
and a single flusher task sends whatever has queued up, one script call per
route for the whole batch, all routes in one pipeline, then the next batch.
Under light load a batch holds one job and adds no delay (no timer); under
heavy load batches grow by themselves while the previous one is in flight, up
to ``batch_max_size``. One script call per batch, not per job, matters: the
client-side cost of encoding a command and parsing its reply dominates.

When Redis is unreachable the whole batch fails with ``RedisUnavailable``,
and for ``breaker_s`` afterwards admissions fail at once without another
connection attempt, so clients get a fast 503 instead of piling up behind
connect timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

from tidegate import scripts
from tidegate.envelope import Job
from tidegate.errors import NotReplicated, RedisUnavailable
from tidegate.ledger import Admission, Admitted, admit_call, admit_results
from tidegate.redis_client import UNAVAILABLE
from tidegate.settings import RouteSettings
from tidegate.tasks import stop_tasks

log = logging.getLogger(__name__)

_Pending = tuple[RouteSettings, Admission, "asyncio.Future[Admitted]"]


class AdmissionBatcher:
    """Queues admissions and flushes them in batches: one script call per route."""

    def __init__(self, redis: Redis, *, batch_max_size: int, breaker_s: float = 0.5) -> None:
        self._redis = redis
        self._max = batch_max_size
        self._breaker_s = breaker_s
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._down_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0
        """Round trips sent so far (for tests and metrics)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="admission-flusher")

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            await stop_tasks([self._task])
        for _, _, future in self._queue:
            if not future.done():
                future.set_exception(RedisUnavailable("gateway shutting down"))
        self._queue.clear()

    async def admit(self, route: RouteSettings, job: Job, idempotency_key: str | None) -> Admitted:
        """Admit one job; raises RedisUnavailable or IdempotencyConflict."""
        if time.monotonic() < self._down_until:
            raise RedisUnavailable("Redis was unreachable a moment ago")
        future: asyncio.Future[Admitted] = asyncio.get_running_loop().create_future()
        self._queue.append((route, Admission(job, idempotency_key), future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                await self._flush(batch)

    async def _flush(self, batch: list[_Pending]) -> None:
        groups: dict[str, list[_Pending]] = {}
        for pending in batch:
            groups.setdefault(pending[0].name, []).append(pending)
        calls = [admit_call(g[0][0], [p[1] for p in g]) for g in groups.values()]
        need, timeout_s = max(
            (g[0][0].replicas_ack, g[0][0].replicas_ack_timeout_s) for g in groups.values()
        )
        self.batches += 1
        try:
            replies = await scripts.run_pipeline(
                self._redis, calls, wait=(need, int(timeout_s * 1000)) if need else None
            )
            acked = replies.pop() if need else 0
        except UNAVAILABLE as e:
            self._down_until = time.monotonic() + self._breaker_s
            log.warning("Redis unreachable, %d admission(s) refused: %s", len(batch), e)
            _fail(batch, RedisUnavailable(str(e)))
            return
        except Exception as e:  # keep the flusher alive whatever happens
            log.exception("admission batch failed")
            _fail(batch, e)
            return
        for group, reply in zip(groups.values(), replies, strict=True):
            needed = group[0][0].replicas_ack
            if needed and acked < needed and not isinstance(reply, Exception):
                reply = NotReplicated(
                    f"{acked} of {needed} Redis replica(s) acknowledged the admission in time"
                )
            if isinstance(reply, Exception):
                log.error("admission into route %s failed: %s", group[0][0].name, reply)
                _fail(group, reply)
                continue
            for (_, _, future), result in zip(group, admit_results(reply), strict=True):
                if future.done():  # the client went away; the job stands regardless
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def _fail(batch: list[_Pending], error: Exception) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(error)
