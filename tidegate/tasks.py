"""Background tasks that stop when asked, even when a library swallows the request.

redis-py can turn the cancellation of a command in flight into a
ConnectionError; a loop that survives connection errors (as ours must, to ride
out Redis restarts) would then swallow its own cancellation and run forever,
and shutdown would hang waiting for it. So every long-running loop here also
checks a ``stopping`` flag, and ``stop_tasks`` cancels again until the tasks
end, within a bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

log = logging.getLogger(__name__)


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], timeout_s: float = 5.0) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again while they linger."""
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in pending:
        log.error("task %s did not stop within %.0f s; abandoning it", task.get_name(), timeout_s)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("task %s had failed", task.get_name(), exc_info=task.exception())


async def run_together(coroutines: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run loops side by side until all end; the first that fails stops the
    others and its error is raised (one loop runs as a plain await)."""
    if len(coroutines) == 1:
        await coroutines[0]
        return
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
        await asyncio.gather(*tasks)
    finally:
        await stop_tasks([t for t in tasks if not t.done()])


async def wait_any(events: Iterable[asyncio.Event], timeout_s: float | None = None) -> None:
    """Until one of ``events`` is set, or ``timeout_s`` has passed."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()


def cancel_requested() -> bool:
    """True when someone asked the current task to stop, even if a library
    swallowed the CancelledError on the way."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def stop_if_cancelled(error: BaseException) -> None:
    """Inside ``except``: re-raise as CancelledError when the current task was
    asked to stop, so a loop that rides out ``error`` does not swallow its own
    cancellation (redis-py may turn a cancellation into a connection error)."""
    if cancel_requested():
        raise asyncio.CancelledError from error
