"""Waiting for results without polling: one pub/sub subscription per process.

When a job ends, the worker's ``finish`` script publishes the job id on the
route's ``done`` channel in the same atomic call that stores the result. The
gateway holds one subscription to every route's channel and resolves the
futures of the requests waiting for those ids; a waiting request costs no
Redis traffic at all.

A future is registered before the job is admitted, so a result cannot slip by
between admission and subscription. Pub/sub drops messages while the
connection is down; after every (re)subscription the waiter therefore reads
the state of every job it still waits for and wakes those that ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence

from redis.asyncio import Redis

from tidegate.errors import RedisUnavailable
from tidegate.keys import RouteKeys
from tidegate.ledger import TERMINAL_STATES, Ledger
from tidegate.redis_client import UNAVAILABLE
from tidegate.tasks import stop_tasks

log = logging.getLogger(__name__)


class ResultWaiter:
    """Maps job ids to the futures of requests waiting for them."""

    def __init__(self, redis: Redis, ledger: Ledger, routes: Sequence[str]) -> None:
        self._redis = redis
        self._ledger = ledger
        self._channels = [RouteKeys(r).done for r in routes]
        self._waiting: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="result-waiter")

    async def close(self) -> None:
        self._stopping = True
        if self._task:
            await stop_tasks([self._task])

    def register(self, job_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[job_id].add(future)
        return future

    def unregister(self, job_id: str, future: asyncio.Future[None]) -> None:
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

    def _wake(self, job_id: str) -> None:
        for future in self._waiting.pop(job_id, ()):
            if not future.done():
                future.set_result(None)

    async def _recheck(self) -> None:
        ids = list(self._waiting)
        if not ids:
            return
        states = await self._ledger.states(ids)
        for job_id, state in zip(ids, states, strict=True):
            if state is None or state in TERMINAL_STATES:
                self._wake(job_id)

    async def _run(self) -> None:
        delay_s = 0.1
        while not self._stopping:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._channels)
                self.subscribed.set()
                delay_s = 0.1
                await self._recheck()
                while not self._stopping:
                    message = await pubsub.get_message(timeout=5.0)
                    if message and message["type"] == "message":
                        data = message["data"]
                        self._wake(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except (*UNAVAILABLE, RedisUnavailable) as e:
                if self.subscribed.is_set():
                    log.warning("result subscription lost (%s); resubscribing", e)
                self.subscribed.clear()
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
