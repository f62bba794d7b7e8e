"""Each gateway's view of its routes' throttles: pub/sub, and a timer.

The admit script enforces the throttle from Redis itself, so this view is not
needed for correctness; it drives the gateway's metrics and logs. Changes
arrive at once on the routes' throttle channels; a re-read every
``REREAD_S`` corrects a missed message, a restarted gateway, or a throttle
that expired because its scaler stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from gateway.metrics import GatewayMetrics
from tidegate.keys import Partitioned, RouteKeys
from tidegate.ledger.store import Store
from tidegate.throttle import Throttle

log = logging.getLogger(__name__)

REREAD_S = 2.0


class ThrottleWatcher:
    def __init__(
        self, store: Store, routes: Sequence[Partitioned], metrics: GatewayMetrics
    ) -> None:
        self._throttles = store.throttle
        self._layouts = {r.name: r for r in routes}
        self._routes = list(self._layouts)
        self._metrics = metrics
        self.states: dict[str, Throttle | None] = dict.fromkeys(self._routes)
        channels = {RouteKeys(r).throttle_channel: r for r in self._routes}
        self._subscription = store.subscription(
            list(channels),
            on_message=lambda channel, _data: self.refresh([channels[channel]]),
            on_subscribed=self.refresh,
            on_idle=self.refresh,
            idle_s=REREAD_S,
            name="throttle subscription",
        )

    def start(self) -> None:
        self._subscription.start()

    async def close(self) -> None:
        await self._subscription.close()

    async def refresh(self, routes: Sequence[str] | None = None) -> None:
        for route in routes or self._routes:
            state = await self._throttles.read(self._layouts[route])
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
