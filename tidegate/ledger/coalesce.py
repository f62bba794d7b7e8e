"""Coalescing concurrent requests into batches, one flusher task at a time.

Callers ``submit`` an item and await its result; a single flusher task takes
whatever has queued up (at most ``max_batch``) and hands it to ``flush``,
which returns one result (or exception) per item, then takes the next batch.
Under light load a batch holds one item and adds no delay (no timer); under
load batches grow by themselves while the previous one is in flight. This is
how the gateway's admissions and a worker's start/finish script calls share
Redis round trips.

A flush that raises fails every item of its batch with that exception; the
flusher lives on. Redis-unreachable failures open a short breaker: for
``breaker_s`` afterwards, submissions fail at once without a connection
attempt, so callers get a fast answer instead of piling up behind timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar

from tidegate.errors import RedisUnavailable
from tidegate.ledger.client import UNAVAILABLE
from tidegate.tasks import stop_tasks

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(ABC, Generic[T, R]):
    def __init__(self, *, max_batch: int, breaker_s: float = 0.5, name: str = "coalescer") -> None:
        self._max = max_batch
        self._breaker_s = breaker_s
        self._name = name
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        self._down_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0
        """Batches flushed so far (round trips, for tests and metrics)."""

    @abstractmethod
    async def flush(self, items: Sequence[T]) -> Sequence[R | BaseException]:
        """Process a batch; one result or exception per item, in order."""

    def start(self) -> None:
        """Start the flusher; again after ``close``; nothing while it runs."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"{self._name}-flusher")

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            await stop_tasks([self._task])
        for _, future in self._queue:
            if not future.done():
                future.set_exception(RedisUnavailable("shutting down"))
        self._queue.clear()

    async def submit(self, item: T) -> R:
        if time.monotonic() < self._down_until:
            raise RedisUnavailable("Redis was unreachable a moment ago")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                await self._flush(batch)

    async def _flush(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        try:
            results = await self.flush([item for item, _ in batch])
        except (RedisUnavailable, *UNAVAILABLE) as e:
            self._down_until = time.monotonic() + self._breaker_s
            log.warning("Redis unreachable, %d %s call(s) failed: %s", len(batch), self._name, e)
            # OutcomeUnknown stays what it is: those calls may have taken effect.
            _fail(batch, e if isinstance(e, RedisUnavailable) else RedisUnavailable(str(e)))
            return
        except Exception as e:  # keep the flusher alive whatever happens
            log.exception("%s batch failed", self._name)
            _fail(batch, e)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


def _fail(batch: Sequence[tuple[object, asyncio.Future[R]]], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
