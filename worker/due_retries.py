"""Promoting a parked retry when it is due, not when the next read ends.

A retryable failure is parked in the route's delayed set with the time it is
due (``finish.lua``), and the read loop promotes due retries before each
read, blocking no longer than until the next one it knows of. A retry parked
while that read is already blocked would otherwise wait for the read to end
(up to ``BLOCK_MS``, a second) on top of its backoff.

So a retry this process parks also gets a timer at its due time, one per
partition (the earliest wins). When it fires, a task promotes that
partition's due retries: the promotion's XADD into the stream is what wakes
the blocked read, on this worker or any other of the group, and the read
loop's own bookkeeping (when to look next) is updated as after any
promotion. When the retry the timer was for is still waiting (a timer may
fire a little before the wall clock reaches its time), it is set again.
Failures are left to the read loop, which promotes at least once a second
anyway. Retries parked by other processes are theirs to time: each worker
makes one promotion per retry it parked, not one per retry of the route.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from tidegate.errors import TidegateError
from tidegate.tasks import stop_tasks

log = logging.getLogger(__name__)

MIN_DELAY_S = 0.001
"""A timer never fires sooner (a clock that runs a hair early must not spin)."""


class DueRetries:
    """One timer per partition at the earliest retry this process parked there."""

    def __init__(self, partitions: int, promote: Callable[[int], Awaitable[float | None]]) -> None:
        """``promote(partition)`` promotes the partition's due retries and
        returns when the next still waiting is due (unix s), or None."""
        self._promote = promote
        self._timers: list[tuple[float, asyncio.TimerHandle] | None] = [None] * partitions
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def parked(self, partition: int, due_s: float) -> None:
        """A retry was parked on ``partition``, due at ``due_s`` (unix s)."""
        current = self._timers[partition]
        if self._closed or (current is not None and current[0] <= due_s):
            return
        if current is not None:
            current[1].cancel()
        delay_s = max(MIN_DELAY_S, due_s - time.time())
        handle = asyncio.get_running_loop().call_later(delay_s, self._fire, partition, due_s)
        self._timers[partition] = (due_s, handle)

    @property
    def pending(self) -> int:
        """Timers set (tests)."""
        return sum(timer is not None for timer in self._timers)

    async def close(self) -> None:
        self._closed = True
        for timer in self._timers:
            if timer is not None:
                timer[1].cancel()
        self._timers = [None] * len(self._timers)
        await stop_tasks(self._tasks)

    def _fire(self, partition: int, due_s: float) -> None:
        self._timers[partition] = None
        task = asyncio.get_running_loop().create_task(self._run(partition, due_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, partition: int, due_s: float) -> None:
        try:
            next_due_s = await self._promote(partition)
        except TidegateError as e:  # the read loop promotes within a second anyway
            log.debug("promoting a parked retry failed (%s); the read loop will", e)
            return
        if next_due_s is not None and next_due_s <= due_s:  # ours, not moved yet
            self.parked(partition, next_due_s)
