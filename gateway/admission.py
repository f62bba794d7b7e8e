"""Admission: coalesce concurrent admissions into one Redis round trip.

Every admission is one call of the ``admit`` Lua script (idempotency check,
XADD of the envelope, the ``accepted`` event and its projection). Awaiting
each call on its own would cost a round trip per request; instead callers
queue their call and a single flusher task sends whatever has queued up as one
pipeline, then the next batch. Under light load a batch holds one call and
adds no delay (no timer); under heavy load batches grow by themselves while
the previous one is in flight, up to ``batch_max_size``.

When Redis is unreachable the whole batch fails with ``RedisUnavailable``,
and for ``breaker_s`` afterwards admissions fail at once without another
connection attempt, so clients get a fast 503 instead of piling up behind
connect timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from redis.asyncio import Redis

from tidegate import scripts
from tidegate.envelope import Job
from tidegate.errors import RedisUnavailable
from tidegate.ledger import Admitted, admit_call, admit_result
from tidegate.redis_client import UNAVAILABLE
from tidegate.settings import RouteSettings
from tidegate.tasks import stop_tasks

log = logging.getLogger(__name__)

_Call = tuple[str, Sequence[str], Sequence[scripts.Arg]]


class AdmissionBatcher:
    """Queues admit calls and flushes them in pipelined batches."""

    def __init__(self, redis: Redis, *, batch_max_size: int, breaker_s: float = 0.5) -> None:
        self._redis = redis
        self._max = batch_max_size
        self._breaker_s = breaker_s
        self._queue: list[tuple[_Call, asyncio.Future[object]]] = []
        self._wake = asyncio.Event()
        self._down_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0
        """Batches sent so far (for tests and metrics)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="admission-flusher")

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            await stop_tasks([self._task])
        for _, future in self._queue:
            if not future.done():
                future.set_exception(RedisUnavailable("gateway shutting down"))
        self._queue.clear()

    async def admit(self, route: RouteSettings, job: Job, idempotency_key: str | None) -> Admitted:
        """Admit one job; raises RedisUnavailable or IdempotencyConflict."""
        if time.monotonic() < self._down_until:
            raise RedisUnavailable("Redis was unreachable a moment ago")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._queue.append((admit_call(route, job, idempotency_key), future))
        self._wake.set()
        reply = await future
        return admit_result(reply)

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                await self._flush(batch)

    async def _flush(self, batch: list[tuple[_Call, asyncio.Future[object]]]) -> None:
        self.batches += 1
        try:
            results = await scripts.run_pipeline(self._redis, [call for call, _ in batch])
        except UNAVAILABLE as e:
            self._down_until = time.monotonic() + self._breaker_s
            log.warning("Redis unreachable, %d admission(s) refused: %s", len(batch), e)
            for _, future in batch:
                if not future.done():
                    future.set_exception(RedisUnavailable(str(e)))
            return
        except Exception as e:  # keep the flusher alive whatever happens
            log.exception("admission batch failed")
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the client went away; the job stands regardless
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
