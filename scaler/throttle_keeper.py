"""Keeping a route's throttle in Redis in line with its governor (``ThrottleKeeper``).

The governor (``scaler.throttle_governor``) decides; this applies: each step it
turns the refused-requests counter into a rate (offered load = admitted +
refused), feeds the governor, and as leader sets, refreshes (the throttle
hash expires unless refreshed, so a throttle never outlives its scaler by
more than its TTL) or lifts the throttle, reporting each change (log and an
Event through ``notify``). A leader that finds a throttle its predecessor
set adopts it, so it is re-rated and lifted by the same rules instead of
being left to expire.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from scaler.rates import ewma, per_second
from scaler.throttle_governor import Step, ThrottleGovernor
from tidegate.errors import RedisUnavailable
from tidegate.keys import Partitioned
from tidegate.ledger.store import Store
from tidegate.settings import ScalerSettings
from tidegate.throttle import Throttle

log = logging.getLogger(__name__)

MIN_TTL_S = 10.0
TTL_INTERVALS = 5
REFUSED_SMOOTHING = 0.3

Notify = Callable[[str, str, str], Awaitable[None]]
"""(reason, message, Normal|Warning) -> an Event."""


class ThrottleKeeper:
    def __init__(
        self,
        route: str | Partitioned,
        settings: ScalerSettings,
        store: Store,
        is_leader: Callable[[], bool],
        notify: Notify,
    ) -> None:
        self.layout = route
        self.route = route if isinstance(route, str) else route.name
        self.settings = settings
        self.throttles = store.throttle
        self.is_leader = is_leader
        self.notify = notify
        self.governor = ThrottleGovernor(settings.throttle)
        self.throttle: Throttle | None = None
        """The throttle as last written (None: not throttled)."""
        self.refused_rate = 0.0
        self._refused: tuple[float, int] | None = None
        self._adopted = False

    def count_refused(self, now: float, refused_total: int) -> None:
        last, self._refused = self._refused, (now, refused_total)
        fresh = per_second(last, now, refused_total) if last is not None else None
        if fresh is not None:
            self.refused_rate = ewma(self.refused_rate, fresh, REFUSED_SMOOTHING)

    async def _adopt(self) -> bool:
        """As a new leader, take over a throttle set before; False if Redis is away."""
        if not self.is_leader():
            self._adopted = False
            return True
        if self._adopted:
            return True
        try:
            found = await self.throttles.read(self.layout)
        except RedisUnavailable:
            return False
        if found is not None:
            self.governor.adopt(found.rate_per_s, found.reason)
            self.throttle = found
        self._adopted = True
        return True

    async def govern(self, step: Step) -> None:
        """Decide on this step and, as leader, make Redis say so."""
        if not await self._adopt():
            return
        verdict = self.governor.decide(step)
        if not self.is_leader():
            return
        t = self.settings.throttle
        ttl_s = max(MIN_TTL_S, self.settings.interval_s * TTL_INTERVALS)
        try:
            if verdict.rate_per_s is None:
                if verdict.changed or self.throttle is not None:
                    await self.throttles.lift(self.layout)
                    await self._report("ThrottleLifted", f"throttle lifted: {verdict.detail}")
                self.throttle = None
                return
            since = self.throttle.since_s if self.throttle else time.time()
            self.throttle = Throttle(
                rate_per_s=verdict.rate_per_s,
                burst=max(1, round(verdict.rate_per_s * t.burst_s)),
                reason=verdict.reason,
                detail=verdict.detail,
                since_s=since,
                status=t.status,
            )
            await self.throttles.apply(self.layout, self.throttle, ttl_s, verdict.changed)
            if verdict.changed:
                await self._report(
                    "Throttled",
                    f"throttled at {verdict.rate_per_s:.1f}/s ({verdict.reason}): {verdict.detail}",
                    "Warning",
                )
        except RedisUnavailable:
            pass  # not refreshed: the throttle expires on its own

    async def _report(self, reason: str, message: str, kind: str = "Normal") -> None:
        log.warning("route %s: %s", self.route, message)
        await self.notify(reason, message, kind)
