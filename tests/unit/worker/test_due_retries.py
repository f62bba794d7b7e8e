"""Timers at parked retries: one per partition at the earliest, the next one
set after each promotion, again when it fired early, cancelled at close;
failures left to the read loop."""

from __future__ import annotations

import asyncio
import time

import pytest

import worker.due_retries as due_retries
from tidegate.errors import RedisUnavailable
from worker.due_retries import DueRetries

FAR_S = 3600.0


class FakePromote:
    """Records each promotion; raises what it is given, in turn."""

    def __init__(self, *failures: Exception | None) -> None:
        self.failures = list(failures)
        self.calls: list[int] = []
        self.called = asyncio.Event()

    async def __call__(self, partition: int) -> None:
        self.calls.append(partition)
        self.called.set()
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure

    async def next_call(self) -> None:
        self.called.clear()
        await asyncio.wait_for(self.called.wait(), 5)
        for _ in range(3):  # let the task finish: drop what was due, set the next timer
            await asyncio.sleep(0)


async def test_a_due_retry_is_promoted_on_its_partition() -> None:
    promote = FakePromote()
    due = DueRetries(2, promote)
    due.parked(1, time.time())
    await promote.next_call()
    assert promote.calls == [1]
    assert due.pending == 0
    await due.close()


async def test_the_earliest_retry_fires_first_and_the_later_ones_wait() -> None:
    promote = FakePromote()
    due = DueRetries(1, promote)
    due.parked(0, time.time() + FAR_S)
    due.parked(0, time.time())  # earlier: its timer replaces the far one
    due.parked(0, time.time() + FAR_S)
    await promote.next_call()
    assert promote.calls == [0]
    assert due.pending == 2  # the two far retries keep their (next) timer
    assert due._timers[0] is not None
    await due.close()


async def test_a_timer_that_fires_early_is_set_again(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [time.time()]
    monkeypatch.setattr(due_retries, "time", type("Clock", (), {"time": lambda: clock[0]}))
    promote = FakePromote()
    due = DueRetries(1, promote)
    due.parked(0, clock[0] + 0.001)  # the clock stays short of it: fires, still not due
    await promote.next_call()
    assert due.pending == 1
    clock[0] += 1.0
    await promote.next_call()
    assert len(promote.calls) >= 2  # (a third when the second ran before the clock moved)
    assert due.pending == 0
    await due.close()


async def test_a_retry_that_fell_due_during_the_promotion_keeps_its_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A timer may fire a millisecond early and the promotion take longer
    than that: the retry was not moved, though its time has passed when the
    call returns."""
    clock = [time.time()]
    monkeypatch.setattr(due_retries, "time", type("Clock", (), {"time": lambda: clock[0]}))
    promote = FakePromote()
    due = DueRetries(1, promote)
    due.parked(0, clock[0] + 0.001)

    async def slow(partition: int) -> None:
        await promote(partition)
        clock[0] += 1.0  # the call took a second, by this clock

    due._promote = slow
    await promote.next_call()
    await promote.next_call()  # set again, at once: its time has passed
    assert promote.calls == [0, 0]
    assert due.pending == 0
    await due.close()


async def test_a_failed_promotion_is_left_to_the_read_loop() -> None:
    promote = FakePromote(RedisUnavailable("down"))
    due = DueRetries(1, promote)
    due.parked(0, time.time())
    await promote.next_call()
    assert due.pending == 0  # dropped: no retrying against a Redis that is down
    due.parked(0, time.time())  # the next parked retry is timed again
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
    assert due._timers == [None, None]
    due.parked(0, time.time())
    assert due.pending == 0
    assert promote.calls == []


async def test_promotions_by_timer_are_spaced() -> None:
    promote = FakePromote()
    due = DueRetries(1, promote)
    due.parked(0, time.time())
    await promote.next_call()
    due.parked(0, time.time())  # due at once, but the last promotion was just now
    timer = due._timers[0]
    assert timer is not None
    loop = asyncio.get_running_loop()
    assert timer[1].when() - loop.time() > due_retries.SPACING_S / 2
    await promote.next_call()
    assert promote.calls == [0, 0]
    await due.close()
