"""Each gateway's view of its routes' throttles: pub/sub, and a timer.

The admit script enforces the throttle from Redis itself, so this view is not
needed for correctness; it drives the gateway's metrics and logs. Changes
arrive at once on the routes' throttle channels; a re-read every
``REREAD_S`` corrects a missed message, a restarted gateway, or a throttle
that expired because its scaler stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from redis.asyncio import Redis

from gateway.metrics import GatewayMetrics
from tidegate import throttle
from tidegate.errors import RedisUnavailable
from tidegate.keys import RouteKeys
from tidegate.redis_client import UNAVAILABLE
from tidegate.tasks import stop_tasks
from tidegate.throttle import Throttle

log = logging.getLogger(__name__)

REREAD_S = 2.0


class ThrottleWatcher:
    def __init__(self, redis: Redis, routes: Sequence[str], metrics: GatewayMetrics) -> None:
        self._redis = redis
        self._routes = list(routes)
        self._metrics = metrics
        self.states: dict[str, Throttle | None] = dict.fromkeys(self._routes)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="throttle-watch")

    async def close(self) -> None:
        self._stopping = True
        if self._task is not None:
            await stop_tasks([self._task])

    async def refresh(self, routes: Sequence[str] | None = None) -> None:
        for route in routes or self._routes:
            state = await throttle.read(self._redis, route)
            before = self.states.get(route)
            self.states[route] = state
            if (before is None) != (state is None):
                if state:
                    log.warning(
                        "route %s throttled at %.1f/s (%s)", route, state.rate_per_s, state.reason
                    )
                else:
                    log.warning("route %s: throttle lifted", route)
            self._metrics.throttle_active.labels(route).set(int(state is not None))
            self._metrics.throttle_rate.labels(route).set(state.rate_per_s if state else 0)
            fill = state.fill(time.time()) if state else 0.0
            self._metrics.throttle_tokens.labels(route).set(fill)

    async def _run(self) -> None:
        channels = {RouteKeys(r).throttle_channel: r for r in self._routes}
        delay_s = 0.1
        while not self._stopping:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                await self.refresh()
                delay_s = 0.1
                while not self._stopping:
                    message = await pubsub.get_message(timeout=REREAD_S)
                    if message and message["type"] == "message":
                        channel = message["channel"]
                        name = channel.decode() if isinstance(channel, bytes) else str(channel)
                        await self.refresh([channels[name]])
                    else:
                        await self.refresh()
            except asyncio.CancelledError:
                raise
            except (*UNAVAILABLE, RedisUnavailable):
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
