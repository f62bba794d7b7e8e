"""A pub/sub subscription that stays subscribed: the one resubscribe loop.

Pub/sub drops messages while the connection is down, so every subscriber
needs the same loop: subscribe, catch up (``on_subscribed``: re-read what may
have been missed), handle messages, and when Redis goes away, back off
(0.1 s doubling to 2 s) and start over. ``on_idle`` runs when no message
came for ``idle_s`` (a re-read on a timer). A callback that raises
``RedisUnavailable`` also starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from tidegate.errors import RedisUnavailable
from tidegate.ledger.client import UNAVAILABLE, Connection, text
from tidegate.tasks import stop_tasks

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0


class Subscription:
    def __init__(
        self,
        redis: Connection,
        channels: Sequence[str],
        *,
        on_message: Callable[[str, str], Awaitable[None] | None],
        on_subscribed: Callable[[], Awaitable[None]],
        on_idle: Callable[[], Awaitable[None]] | None = None,
        idle_s: float = 5.0,
        name: str = "subscription",
    ) -> None:
        self._redis = redis
        self._channels = list(channels)
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._on_idle = on_idle
        self._idle_s = idle_s
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.subscribed = asyncio.Event()
        """Set while subscribed (and caught up)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def close(self) -> None:
        self._stopping = True
        if self._task is not None:
            await stop_tasks([self._task])

    async def _run(self) -> None:
        delay_s = 0.1
        while not self._stopping:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._channels)
                await self._on_subscribed()
                self.subscribed.set()
                delay_s = 0.1
                while not self._stopping:
                    message = await pubsub.get_message(timeout=self._idle_s)
                    if message and message["type"] == "message":
                        handled = self._on_message(text(message["channel"]), text(message["data"]))
                        if handled is not None:
                            await handled
                    elif self._on_idle is not None:
                        await self._on_idle()
            except asyncio.CancelledError:
                raise
            except (*UNAVAILABLE, RedisUnavailable) as e:
                if self.subscribed.is_set():
                    log.warning("%s lost (%s); resubscribing", self._name, e)
                self.subscribed.clear()
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, MAX_BACKOFF_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
