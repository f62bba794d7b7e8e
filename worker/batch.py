"""Batch handlers: one call of a Python function for many jobs.

``tidegate worker --app module:function --batch-size N --batch-wait-ms M``
calls ``function(jobs)`` with a list of up to N ``Job``s: as soon as N are
there, or M ms after the first of a batch arrived with fewer. It returns a
list with one outcome per job, in the same order; each outcome is what a
single handler may return (a ``Reply``, ``bytes``/``str``, a JSON value), or
an exception instance: that job fails (retryable), the others do not.

Each job lives on its own, as with a single handler: it is started before it
joins a batch and finished after, with its own events, attempts, retries,
dead letter and compensation; a job that comes back for another attempt
joins whatever batch is forming then. The batching happens between the
consumer's per-job tasks and the function: each task hands its job over and
waits for its outcome. So the consumer's concurrency must be at least N for
full batches, and 2N lets the next batch form while one runs; ``tidegate
worker`` raises it to 2N when it is lower.

A function that raises fails every job of the batch (retryable); one that
returns a list of the wrong length is a bug, and fails them all the same way,
saying so. The scaler learns a route's service rate from completed jobs, so
it sees a batch worker's throughput as it is.

Example, a bulk insert (one round trip for up to 64 rows)::

    async def insert_orders(jobs):
        rows = [json.loads(job.body) for job in jobs]
        ids = await db.insert_many("orders", rows)    # all or nothing
        return [{"id": order_id} for order_id in ids]
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tidegate.envelope import Failure, Job, Reply
from tidegate.tasks import stop_tasks
from worker.handler import CompensateFn, compensate_with, to_reply

BatchFn = Callable[[list[Job]], Awaitable[Sequence[Any]]]


def outcome_of(value: Any) -> Reply | Failure:
    if isinstance(value, BaseException):
        return Failure(f"handler failed this job: {type(value).__name__}: {value}", True)
    return to_reply(value)


class BatchHandler:
    """An executor that gathers concurrent jobs into batches for ``fn``."""

    def __init__(
        self,
        fn: BatchFn,
        size: int,
        wait_s: float,
        compensate_fn: CompensateFn | None = None,
    ) -> None:
        if size < 1 or wait_s < 0:
            raise ValueError("batch size must be at least 1 and the wait not negative")
        self.fn = fn
        self.size = size
        self.wait_s = wait_s
        self.compensate_fn = compensate_fn
        self._forming: list[tuple[Job, asyncio.Future[Reply | Failure]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.batches = 0
        """Calls of ``fn`` so far."""

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        self._flush()
        await stop_tasks(list(self._running))

    async def __call__(self, job: Job) -> Reply | Failure:
        future: asyncio.Future[Reply | Failure] = asyncio.get_running_loop().create_future()
        self._forming.append((job, future))
        if len(self._forming) >= self.size:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._forming:
            batch, self._forming = self._forming[: self.size], self._forming[self.size :]
            task = asyncio.create_task(self._run(batch), name="batch")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Job, asyncio.Future[Reply | Failure]]]) -> None:
        self.batches += 1
        jobs = [job for job, _ in batch]
        try:
            values = list(await self.fn(jobs))
        except asyncio.CancelledError:
            for _, future in batch:  # shutting down: the jobs stay pending, redelivered
                future.cancel()
            raise
        except Exception as e:
            failure = Failure(f"batch handler raised {type(e).__name__}: {e}", True)
            outcomes: list[Reply | Failure] = [failure] * len(batch)
        else:
            if len(values) != len(batch):
                why = f"batch handler returned {len(values)} outcome(s) for {len(batch)} job(s)"
                outcomes = [Failure(why, True)] * len(batch)
            else:
                outcomes = [outcome_of(v) for v in values]
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def compensate(self, job: Job, error: str) -> Reply | Failure | None:
        return await compensate_with(self.compensate_fn, job, error)
