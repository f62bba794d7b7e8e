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

On one server over plain TCP (a client with links, ``client.LinkedRedis``)
the subscription has a link of its own: each message is parsed as it
arrives and handed to ``on_message`` right there, with no task, timeout or
poll per message; an ``on_message`` that returns an awaitable is awaited by
the subscription's task, in order. Other clients (TLS, Sentinel, Cluster)
read messages through redis-py's pub/sub.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub

from tidegate.errors import OutcomeUnknown, RedisUnavailable
from tidegate.ledger.client import UNAVAILABLE, Connection, text
from tidegate.ledger.link import Link
from tidegate.ledger.resp import pack
from tidegate.ledger.transport import transport
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
        delay_s = 0.1
        while not self._stopping:
            try:
                link = transport(self._redis).own_link()
                if link is not None:
                    await self._on_link(link)
                else:
                    await self._on_pubsub()
            except asyncio.CancelledError:
                raise
            except (*UNAVAILABLE, RedisUnavailable, OutcomeUnknown) as e:
                if self.subscribed.is_set():
                    log.warning("%s lost (%s); resubscribing", self._name, e)
                    delay_s = 0.1  # it was up: the first retry comes soon
                self.subscribed.clear()
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, MAX_BACKOFF_S)

    async def _caught_up(self) -> None:
        await self._on_subscribed()
        self.subscribed.set()

    def _call(self, channel: str, data: bytes) -> Awaitable[None] | None:
        """Hand a message to ``on_message``: what is left to await, if anything.
        RedisUnavailable goes up (start over); any other failure is logged."""
        try:
            return self._on_message(channel, data)
        except RedisUnavailable:
            raise
        except Exception:
            log.exception("%s: a message handler failed", self._name)
            return None

    async def _handle(self, channel: str, data: bytes) -> None:
        handled = self._call(channel, data)
        if handled is not None:
            await self._settle(handled)

    async def _settle(self, handled: Awaitable[None]) -> None:
        """Await a handler; a failure other than Redis's is logged, and the
        subscription goes on (a handler's bug must not end it)."""
        try:
            await handled
        except RedisUnavailable:
            raise
        except Exception:
            log.exception("%s: a message handler failed", self._name)

    async def _on_link(self, link: Link) -> None:
        """One subscription on a link of its own, until it is lost (raises) or stopped."""
        loop = asyncio.get_running_loop()
        lost: str | None = None  # why the connection went, once it has
        queued: collections.deque[Awaitable[None]] = collections.deque()
        wake = asyncio.Event()
        idle_since = loop.time()

        def pushed(reply: list[Any]) -> None:
            nonlocal idle_since
            if reply[0] != b"smessage" or len(reply) != 3:
                return
            idle_since = loop.time()
            data = reply[2]
            try:
                handled = self._call(text(reply[1]), data if isinstance(data, bytes) else b"")
            except RedisUnavailable as e:  # as from an awaited handler: start over
                gone(f"a message handler could not reach Redis: {e}")
                return
            if handled is not None:
                queued.append(handled)
                wake.set()

        def gone(why: str) -> None:
            nonlocal lost
            lost = lost or why
            wake.set()

        link.on_push, link.on_lost = pushed, gone
        try:
            confirmed = await link.exchange(
                pack(["SSUBSCRIBE", *self._channels]), len(self._channels)
            )
            refused = [c for c in confirmed if isinstance(c, Exception)]
            if refused:
                raise RedisUnavailable(f"Redis refused SSUBSCRIBE: {refused[0]}")
            await self._caught_up()
            while not self._stopping:
                while queued:
                    await self._settle(queued.popleft())
                if lost is not None:
                    raise RedisUnavailable(lost)
                wake.clear()
                if self._on_idle is None:
                    await wake.wait()
                    continue
                left_s = idle_since + self._idle_s - loop.time()
                if left_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), left_s)
                    continue
                idle_since = loop.time()
                await self._on_idle()
        finally:
            link.on_push = link.on_lost = None
            link.close()
            for handled in queued:  # never awaited: close the coroutines
                if asyncio.iscoroutine(handled):
                    handled.close()

    async def _on_pubsub(self) -> None:
        """One subscription through redis-py's pub/sub (every other client)."""
        loop = asyncio.get_running_loop()
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await transport(self._redis).ready()  # a cluster's slot map: each channel's shard
            await pubsub.ssubscribe(*self._channels)
            await self._caught_up()
            idle_since = loop.time()
            while not self._stopping:
                message = await _next(pubsub, self._idle_s)
                if message and message["type"] == "smessage":
                    idle_since = loop.time()
                    data = message["data"]
                    await self._handle(
                        text(message["channel"]), data if isinstance(data, bytes) else b""
                    )
                elif self._on_idle is not None and loop.time() - idle_since >= self._idle_s:
                    idle_since = loop.time()
                    await self._on_idle()
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
