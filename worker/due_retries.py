"""Promoting a parked retry when it is due, not when the next read ends.

A retryable failure is parked in the route's delayed set with the time it is
due (``finish.lua``), and the read loop promotes due retries before each
read, blocking no longer than until the next one it knows of. A retry parked
while that read is already blocked would otherwise wait for the read to end
(up to ``BLOCK_MS``, a second) on top of its backoff.

So every retry this process parks is kept with its due time, per
partition, and a timer runs at the earliest of them. When it fires, a task
promotes that partition's due retries: the promotion's XADD into the stream
is what wakes the blocked read, on this worker or any other of the group,
and the read loop's own bookkeeping (when to look next) is updated as after
any promotion. The retries due by then are dropped and the timer is set at
the next one (the same one again when the timer fired a little before the
wall clock reached its time). A failed promotion is left to the read loop,
which promotes at least once a second anyway. Retries parked by other
processes are theirs to time: each worker makes at most one promotion per
retry it parked, not one per retry of the route, and at most one per
``SPACING_S`` on a partition.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable

from tidegate.errors import TidegateError
from tidegate.tasks import stop_tasks

log = logging.getLogger(__name__)

MIN_DELAY_S = 0.001
"""A timer never fires sooner (a clock that runs a hair early must not spin)."""

SPACING_S = 0.01
"""Promotions by timer on one partition are at least this far apart: many
retries parked at once (an upstream outage) cost one script call per 10 ms,
not one each, and none runs more than 10 ms late."""


class DueRetries:
    """Per partition: the due times of the retries this process parked, and
    one timer at the earliest."""

    def __init__(self, partitions: int, promote: Callable[[int], Awaitable[object]]) -> None:
        """``promote(partition)`` promotes the partition's due retries."""
        self._promote = promote
        self._dues: list[list[float]] = [[] for _ in range(partitions)]
        """Per partition: a heap of due times (unix s)."""
        self._timers: list[tuple[float, asyncio.TimerHandle] | None] = [None] * partitions
        self._fired_s = [0.0] * partitions
        """Per partition: when its timer last fired (unix s)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def parked(self, partition: int, due_s: float) -> None:
        """A retry was parked on ``partition``, due at ``due_s`` (unix s)."""
        if self._closed:
            return
        heapq.heappush(self._dues[partition], due_s)
        self._arm(partition)

    @property
    def pending(self) -> int:
        """Retries waiting for their timer (tests)."""
        return sum(len(dues) for dues in self._dues)

    async def close(self) -> None:
        self._closed = True
        for timer in self._timers:
            if timer is not None:
                timer[1].cancel()
        self._timers = [None] * len(self._timers)
        self._dues = [[] for _ in self._dues]
        await stop_tasks(self._tasks)

    def _arm(self, partition: int) -> None:
        """The partition's timer at its earliest due time (if not set there)."""
        dues, current = self._dues[partition], self._timers[partition]
        if self._closed or not dues or (current is not None and current[0] <= dues[0]):
            return
        if current is not None:
            current[1].cancel()
        at_s = max(dues[0], self._fired_s[partition] + SPACING_S)
        delay_s = max(MIN_DELAY_S, at_s - time.time())
        handle = asyncio.get_running_loop().call_later(delay_s, self._fire, partition)
        self._timers[partition] = (dues[0], handle)

    def _fire(self, partition: int) -> None:
        self._timers[partition] = None
        self._fired_s[partition] = time.time()
        task = asyncio.get_running_loop().create_task(self._run(partition))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, partition: int) -> None:
        # The clock before the call: a retry due after it was not moved by it,
        # even when the call took long enough for the clock to pass its time.
        promoted_at_s = time.time()
        try:
            await self._promote(partition)
        except TidegateError as e:  # the read loop promotes within a second anyway
            log.debug("promoting a parked retry failed (%s); the read loop will", e)
        dues = self._dues[partition]
        while dues and dues[0] <= promoted_at_s:  # moved (or left to the read loop)
            heapq.heappop(dues)
        self._arm(partition)
