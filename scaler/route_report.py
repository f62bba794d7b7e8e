"""What a route's control step tells the outside, once it has decided.

- **Gauges** (``scaler.metrics``): set only when what they show changed (an
  idle route is the same tick after tick).
- **The view** in Redis (``tidegate.scaler_view``): what gateways and
  ``tidegate status`` read. Written when it changed, else at most every
  ``VIEW_REFRESH_INTERVALS`` intervals (well within its TTL): rewriting an
  idle route's unchanged view was the largest part of its cost. A view that
  cannot be written expires on its own.

The BacklogScaler's status and Events stay with ``scaler.status``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scaler.actuator import Replicas
from scaler.metrics import RouteGauges
from scaler.policy import Decision, Sample
from tidegate.errors import RedisUnavailable
from tidegate.ledger.runner import Runner
from tidegate.ledger.store import Store
from tidegate.scaler_view import ScalerView
from tidegate.settings import ScalerSettings
from tidegate.tasks import stop_if_cancelled
from tidegate.throttle import Throttle

VIEW_REFRESH_INTERVALS = 4
"""An unchanged view is written again after this many intervals (its TTL is
five, at least 10 s), so its ``updated_at_s`` stays that fresh."""


@dataclass(frozen=True)
class Found:
    """What one step found and decided."""

    decision: Decision
    replicas: Replicas
    sample: Sample
    target: int
    """The replicas asked for (the decision, or the fallback)."""
    reason: str


class RouteReport:
    """The gauges and the view of one route."""

    def __init__(
        self,
        route: str,
        settings: ScalerSettings,
        target: str,
        store: Store,
        runner: Runner,
        gauges: RouteGauges,
        clock: Callable[[], float],
    ) -> None:
        self.route = route
        self.settings = settings
        self.target = target
        """The scaled target, as the view names it."""
        self.store = store
        self.runner = runner
        self._gauges = gauges
        self.clock = clock
        self._seen: tuple[Any, ...] | None = None
        """What the gauges were last set from."""
        self._view: ScalerView | None = None
        """The view last published (its time left out), and when."""
        self._view_at = float("-inf")
        self._encoded: dict[str, str] | None = None
        """Its stored fields: refreshing an unchanged view re-encodes only the time."""

    def observe(
        self, decision: Decision, replicas: Replicas, sample: Sample, throttle: Throttle | None
    ) -> None:
        """Set the route's gauges (only when something changed)."""
        seen = (
            sample.waiting,
            sample.pending,
            sample.oldest_age_s,
            decision.arrival_rate,
            decision.completion_rate,
            decision.service_rate,
            decision.replicas,
            replicas,
            decision.exhausted,
            throttle,
        )
        if seen == self._seen:  # an idle route, tick after tick: nothing to set
            return
        self._seen = seen
        g = self._gauges
        if sample.waiting is not None:
            g.waiting.set(sample.waiting)
            g.pending.set(sample.pending)
            g.oldest_age.set(sample.oldest_age_s or 0.0)
        g.arrival.set(decision.arrival_rate)
        g.drain.set(decision.completion_rate)
        g.service.set(decision.service_rate or 0.0)
        g.desired.set(decision.replicas)
        g.current.set(replicas.current)
        g.ready.set(replicas.ready)
        g.exhausted.set(int(decision.exhausted))
        g.throttle_rate.set(throttle.rate_per_s if throttle else 0)

    async def publish(self, found: Found, throttle: Throttle | None, refused_rate: float) -> None:
        """Publish the route's view: what the gateways and ``tidegate status`` show."""
        decision, replicas, sample = found.decision, found.replicas, found.sample
        age = None if sample.oldest_age_s is None else round(sample.oldest_age_s, 3)
        view = ScalerView(
            waiting=sample.waiting,
            pending=sample.pending,
            oldest_waiting_age_s=age,
            arrival_rate=round(decision.arrival_rate, 3),
            drain_rate=round(decision.completion_rate, 3),
            service_rate=None if decision.service_rate is None else round(decision.service_rate, 3),
            desired_replicas=found.target,
            needed_replicas=decision.needed,
            current_replicas=replicas.current,
            ready_replicas=replicas.ready,
            max_replicas=self.settings.max_replicas,
            exhausted=decision.exhausted,
            reason=found.reason,
            target=self.target,
            throttle=throttle.as_dict() if throttle else None,
            refused_rate=round(refused_rate, 3),
            updated_at_s=0.0,  # set when written
            predicted_rate=(
                None if decision.predicted_rate is None else round(decision.predicted_rate, 3)
            ),
        )
        await self._publish_view(view)

    async def _publish_view(self, same: ScalerView) -> None:
        """Publish the view (given without its time) when it changed, else at
        most every ``VIEW_REFRESH_INTERVALS`` intervals (well within its
        TTL): an idle route's view is the same tick after tick, and writing
        it anyway was the largest part of an idle route's cost."""
        now = self.clock()
        due = now - self._view_at >= VIEW_REFRESH_INTERVALS * self.settings.interval_s
        unchanged = same == self._view
        if unchanged and not due:
            return
        encoded = self._encoded if unchanged else self.store.views.encode(same)
        view = dataclasses.replace(same, updated_at_s=round(time.time(), 3))
        try:
            await self.store.views.publish(
                self.route,
                view,
                self.settings.interval_s,
                runner=self.runner,
                encoded=encoded,
            )
        except RedisUnavailable as e:  # then the view expires on its own
            stop_if_cancelled(e)
            return
        self._view, self._view_at, self._encoded = same, now, encoded
