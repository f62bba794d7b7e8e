"""A BacklogScaler's status and Events: what the route loop tells Kubernetes.

``route_status`` turns a step (decision, replicas, sample, throttle) into the
resource's status fields and conditions (``Active``, ``Exhausted``,
``Throttled``, ``MetricsAvailable``); ``StatusReporter`` writes them, skipping
a write when nothing but the fast-moving rates changed, and writing at least
every ``STATUS_EVERY_S``; it also emits Events. A route scaled from the
config file (no resource) reports nothing. API errors are counted and logged,
never fatal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from scaler.actuator import Replicas
from scaler.kube import KubeError
from scaler.metrics import ScalerMetrics
from scaler.policy import Decision, Sample
from scaler.resources import ResourceRef, condition, merge_conditions, now_rfc3339
from tidegate.throttle import Throttle

log = logging.getLogger(__name__)

STATUS_EVERY_S = 10.0
CHANGING = frozenset({"arrivalRate", "drainRate", "serviceRate", "oldestWaitingAge"})
"""Status fields that move every step: written with the rest, never on their own."""

StatusWriter = Callable[[ResourceRef, dict[str, Any]], Awaitable[None]]
EventWriter = Callable[[ResourceRef, str, str, str], Awaitable[None]]
Conditions = list[dict[str, str]]


def route_status(
    route: str,
    decision: Decision,
    replicas: Replicas,
    sample: Sample,
    target: int,
    reason: str,
    *,
    throttle: Throttle | None,
    failures: int,
    max_replicas: int,
) -> tuple[dict[str, Any], Conditions]:
    """The status fields and conditions of one step."""
    waiting, pending = sample.waiting, sample.pending
    age = None if sample.oldest_age_s is None else round(sample.oldest_age_s, 3)
    fields = {
        "route": route,
        "lag": waiting,
        "pending": pending,
        "oldestWaitingAge": None if age is None else f"{age:.0f}s",
        "arrivalRate": f"{decision.arrival_rate:.3f}",
        "drainRate": f"{decision.completion_rate:.3f}",
        "serviceRate": None if decision.service_rate is None else f"{decision.service_rate:.3f}",
        "desiredReplicas": target,
        "currentReplicas": replicas.current,
        "readyReplicas": replicas.ready,
    }
    conditions = [
        condition("Active", target > 0, "Scaling" if target else "Idle", reason),
        condition(
            "Exhausted",
            decision.exhausted,
            "AboveMaxReplicas" if decision.exhausted else "WithinMaxReplicas",
            f"needs {decision.needed}, may have {max_replicas}",
        ),
        condition(
            "Throttled",
            throttle is not None,
            "ScalingExhausted" if throttle else "NotThrottled",
            f"admitting {throttle.rate_per_s:.1f}/s: {throttle.detail}"
            if throttle
            else "scaling keeps up",
        ),
        condition(
            "MetricsAvailable",
            waiting is not None,
            "Measured" if waiting is not None else "RedisUnavailable",
            "backlog measured"
            if waiting is not None
            else f"{failures} failed measurement(s) in a row",
        ),
    ]
    return fields, conditions


class StatusReporter:
    def __init__(
        self,
        route: str,
        metrics: ScalerMetrics,
        resource: ResourceRef | None = None,
        conditions: Conditions | None = None,
        write_status: StatusWriter | None = None,
        write_event: EventWriter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.route = route
        self.metrics = metrics
        self.resource = resource
        self.write_status = write_status
        self.write_event = write_event
        self.clock = clock
        self._conditions = list(conditions or [])
        self._key: tuple[Any, ...] | None = None
        self._at = -STATUS_EVERY_S

    @property
    def writes(self) -> bool:
        """Whether there is a resource whose status is written (else reports
        need not even be built)."""
        return self.resource is not None and self.write_status is not None

    async def report(self, fields: dict[str, Any], conditions: Conditions) -> None:
        if self.resource is None or self.write_status is None:
            return
        key = (
            tuple(sorted((k, v) for k, v in fields.items() if k not in CHANGING)),
            tuple((c["type"], c["status"], c["reason"]) for c in conditions),
        )
        now = self.clock()
        if key == self._key and now - self._at < STATUS_EVERY_S:
            return
        merged = merge_conditions(self._conditions, conditions, now_rfc3339())
        status = {**fields, "observedGeneration": self.resource.generation, "conditions": merged}
        try:
            await self.write_status(self.resource, status)
        except KubeError as e:
            self._failed(e)
            return
        self._key, self._at, self._conditions = key, now, merged

    async def event(self, reason: str, message: str, kind: str) -> None:
        if self.resource is None or self.write_event is None:
            return
        try:
            await self.write_event(self.resource, reason, message, kind)
        except KubeError as e:
            self._failed(e)

    def _failed(self, e: KubeError) -> None:
        self.metrics.api_errors.labels(self.route, str(e.status)).inc()
        log.warning("route %s: %s", self.route, e)
