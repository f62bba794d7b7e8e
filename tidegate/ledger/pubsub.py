"""A pub/sub subscription that stays subscribed: the one resubscribe loop.

Sharded pub/sub (``SSUBSCRIBE``; the scripts ``SPUBLISH``): a route's
channels carry its hash tag, so on a cluster its notifications stay on the
shard that holds the route instead of crossing the whole cluster bus; on one
server it works the same. Pub/sub drops messages while the connection is
down, so every subscriber
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
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub, RedisCluster

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
        on_message: Callable[[str, bytes], Awaitable[None] | None],
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
        loop = asyncio.get_running_loop()
        delay_s = 0.1
        while not self._stopping:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                if isinstance(self._redis, RedisCluster):
                    await self._redis.initialize()  # the slot map, to find each channel's shard
                await pubsub.ssubscribe(*self._channels)
                await self._on_subscribed()
                self.subscribed.set()
                delay_s = 0.1
                idle_since = loop.time()
                while not self._stopping:
                    message = await _next(pubsub, self._idle_s)
                    if message and message["type"] == "smessage":
                        idle_since = loop.time()
                        data = message["data"]
                        handled = self._on_message(
                            text(message["channel"]), data if isinstance(data, bytes) else b""
                        )
                        if handled is not None:
                            await handled
                    elif self._on_idle is not None and loop.time() - idle_since >= self._idle_s:
                        idle_since = loop.time()
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


CLUSTER_POLL_S = 0.05
"""On a cluster, the subscription spans a connection per shard and is read
one shard at a time: each read waits this long at most, so no shard's
message waits behind another shard's silence."""


async def _next(pubsub: PubSub, idle_s: float) -> dict[str, Any] | None:
    message: dict[str, Any] | None
    if isinstance(pubsub, ClusterPubSub):
        message = await pubsub.get_sharded_message(
            ignore_subscribe_messages=True, timeout=CLUSTER_POLL_S
        )
    else:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=idle_s)
    return message
