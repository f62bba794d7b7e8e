"""Waiting for results without polling: one pub/sub subscription per process.

When a job ends, the worker's ``finish`` script publishes the job id on the
route's (partition's) ``done`` channel in the same atomic call that stores
the result; a small result comes along in the message (``envelope.Ended``),
and the waiting request answers with it without reading anything. The
gateway holds one subscription to every partition's channel and resolves the
futures of the requests waiting for those ids; a waiting request costs no
Redis traffic at all.

A future is registered before the job is admitted, so a result cannot slip by
between admission and subscription. Pub/sub drops messages while the
connection is down; after every (re)subscription the waiter therefore reads
the state of every job it still waits for and wakes those that ended.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from tidegate.envelope import Ended, parse_done
from tidegate.keys import Partitioned, parts_of
from tidegate.ledger import TERMINAL_STATES, Ledger


class ResultWaiter:
    """Maps job ids to the futures of requests waiting for them."""

    def __init__(self, ledger: Ledger, routes: Sequence[Partitioned]) -> None:
        self._ledger = ledger
        self._waiting: dict[str, set[asyncio.Future[Ended | None]]] = defaultdict(set)
        self._subscription = ledger.store.subscription(
            [keys.done for route in routes for keys in parts_of(route)],
            on_message=lambda _channel, data: self._wake(*parse_done(data)),
            on_subscribed=self._recheck,
            name="result subscription",
        )
        self.subscribed = self._subscription.subscribed

    def start(self) -> None:
        self._subscription.start()

    async def close(self) -> None:
        await self._subscription.close()

    def register(self, job_id: str) -> asyncio.Future[Ended | None]:
        """A future that completes when the job ends: with its outcome when the
        notification carried it, else None (read the job)."""
        future: asyncio.Future[Ended | None] = asyncio.get_running_loop().create_future()
        self._waiting[job_id].add(future)
        return future

    async def wait(
        self, future: asyncio.Future[Ended | None], timeout_s: float
    ) -> tuple[bool, Ended | None]:
        """Wait up to ``timeout_s`` for a future from ``register``: (True, what
        it carried) once the job ended or the shutdown released it, (False,
        None) when the time ran out.

        One timer on the request's own future and nothing else: the usual
        ``asyncio.wait_for(asyncio.shield(future), timeout_s)`` adds a shield
        future, a waiter future and their callbacks to every sync request.
        """
        if not future.done():
            timer = asyncio.get_running_loop().call_later(timeout_s, _expire, future)
            try:
                await future
            except TimeoutError:
                return False, None
            finally:
                timer.cancel()
        return True, future.result()

    def unregister(self, job_id: str, future: asyncio.Future[Ended | None]) -> None:
        futures = self._waiting.get(job_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._waiting[job_id]

    @property
    def waiting(self) -> int:
        return sum(len(f) for f in self._waiting.values())

    def release_all(self) -> None:
        """Wake every waiting request (shutdown): each answers 202 unless done."""
        for job_id in list(self._waiting):
            self._wake(job_id)

    def _wake(self, job_id: str, ended: Ended | None = None) -> None:
        for future in self._waiting.pop(job_id, ()):
            if not future.done():
                future.set_result(ended)

    async def _recheck(self) -> None:
        ids = list(self._waiting)
        if not ids:
            return
        states = await self._ledger.states(ids)
        for job_id, state in zip(ids, states, strict=True):
            if state is None or state in TERMINAL_STATES:
                self._wake(job_id)


def _expire(future: asyncio.Future[Ended | None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
