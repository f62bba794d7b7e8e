"""Timers at parked retries: the earliest per partition, set again while the
retry is still waiting, cancelled at close, failures left to the read loop."""

from __future__ import annotations

import asyncio
import time

from tidegate.errors import RedisUnavailable
from worker.due_retries import DueRetries

FAR_S = 3600.0


class FakePromote:
    """Records each promotion; answers what is still waiting (unix s or None)."""

    def __init__(self, *answers: float | Exception | None) -> None:
        self.answers = list(answers)
        self.calls: list[int] = []
        self.called = asyncio.Event()

    async def __call__(self, partition: int) -> float | None:
        self.calls.append(partition)
        self.called.set()
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def next_call(self) -> None:
        self.called.clear()
        await asyncio.wait_for(self.called.wait(), 5)
        await asyncio.sleep(0)  # let the task finish with the answer


async def test_a_due_retry_is_promoted_on_its_partition() -> None:
    promote = FakePromote()
    due = DueRetries(2, promote)
    due.parked(1, time.time())
    await promote.next_call()
    assert promote.calls == [1]
    assert due.pending == 0
    await due.close()


async def test_the_earliest_retry_of_a_partition_sets_its_timer() -> None:
    promote = FakePromote()
    due = DueRetries(1, promote)
    due.parked(0, time.time() + FAR_S)
    due.parked(0, time.time())  # earlier: replaces the far timer
    due.parked(0, time.time() + FAR_S)  # later: the near timer stays
    await promote.next_call()
    assert promote.calls == [0]
    assert due.pending == 0  # the far timer was replaced, not kept beside it
    await due.close()


async def test_its_own_retry_still_waiting_sets_the_timer_again() -> None:
    now = time.time()
    promote = FakePromote(now, None)  # first: not moved yet (fired a hair early)
    due = DueRetries(1, promote)
    due.parked(0, now)
    await promote.next_call()
    await promote.next_call()
    assert promote.calls == [0, 0]
    assert due.pending == 0


async def test_a_later_retry_of_another_process_gets_no_timer() -> None:
    now = time.time()
    promote = FakePromote(now + FAR_S)
    due = DueRetries(1, promote)
    due.parked(0, now)
    await promote.next_call()
    assert due.pending == 0  # the read loop's own look covers it
    await due.close()


async def test_a_failed_promotion_is_left_to_the_read_loop() -> None:
    promote = FakePromote(RedisUnavailable("down"))
    due = DueRetries(1, promote)
    due.parked(0, time.time())
    await promote.next_call()
    assert due.pending == 0
    due.parked(0, time.time())  # and the next parked retry is timed again
    await promote.next_call()
    assert promote.calls == [0, 0]
    await due.close()


async def test_close_cancels_the_timers_and_takes_no_more() -> None:
    promote = FakePromote()
    due = DueRetries(2, promote)
    due.parked(0, time.time() + FAR_S)
    due.parked(1, time.time() + FAR_S)
    assert due.pending == 2
    await due.close()
    assert due.pending == 0
    due.parked(0, time.time())
    assert due.pending == 0
    assert promote.calls == []
