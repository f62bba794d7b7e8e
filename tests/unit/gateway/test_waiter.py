"""The sync wait: a request's future ends by its job's end, the shutdown's
release, or its own timer; and a cancelled request leaves nothing behind."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.waiter import ResultWaiter
from tidegate.envelope import Ended, Reply


def _waiter() -> ResultWaiter:
    subscription = SimpleNamespace(subscribed=asyncio.Event())
    store = SimpleNamespace(subscription=lambda *a, **k: subscription)
    ledger: Any = SimpleNamespace(store=store)
    return ResultWaiter(ledger, [])


ENDED = Ended("j1", "succeeded", 1_700_000_000_000, Reply(200, (), b"ok"))


async def test_the_jobs_end_wakes_the_wait_with_what_it_carried() -> None:
    waiter = _waiter()
    future = waiter.register("j1")
    asyncio.get_running_loop().call_soon(waiter._wake, "j1", ENDED)
    assert await waiter.wait(future, 3600) == (True, ENDED)
    assert waiter.waiting == 0


async def test_the_shutdown_releases_the_wait_without_an_outcome() -> None:
    waiter = _waiter()
    future = waiter.register("j1")
    asyncio.get_running_loop().call_soon(waiter.release_all)
    assert await waiter.wait(future, 3600) == (True, None)


async def test_the_wait_runs_out_on_its_own_timer() -> None:
    waiter = _waiter()
    future = waiter.register("j1")
    assert await waiter.wait(future, 0) == (False, None)
    waiter.unregister("j1", future)
    assert waiter.waiting == 0
    waiter._wake("j1", ENDED)  # a late notification finds nobody waiting: no error


async def test_an_already_ended_job_answers_without_a_timer() -> None:
    waiter = _waiter()
    future = waiter.register("j1")
    waiter._wake("j1", ENDED)
    assert await waiter.wait(future, 0) == (True, ENDED)


async def test_a_cancelled_request_cancels_its_future_and_its_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []

    def call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        timers.append(handle := loop.call_at(loop.time() + delay, callback, *args))
        return handle

    monkeypatch.setattr(loop, "call_later", call_later)
    waiter = _waiter()
    future = waiter.register("j1")
    task = asyncio.create_task(waiter.wait(future, 3600))
    await asyncio.sleep(0)
    assert len(timers) == 1
    assert not timers[0].cancelled()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert future.cancelled()
    assert timers[0].cancelled()
    waiter.unregister("j1", future)
    waiter._wake("j1", ENDED)  # nobody waits: nothing to set
