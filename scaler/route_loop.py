"""The control loop: one task per scaled route, sampling, deciding, writing.

Each route runs on its own ``interval_s``:

1. observe the target's replicas (actuator);
2. sample the route in Redis (``scaler.sampling``);
3. decide (``scaler.policy``, pure);
4. if this replica leads (``is_leader``) and the decision differs from what
   the target is asked to run: write it, emit an Event;
5. keep the throttle in line (``scaler.throttle_keeper``: set,
   re-rate or lift it when scaling is exhausted or has recovered);
6. report: the route's gauges, its view in Redis (``tidegate.scaler_view``)
   and the BacklogScaler's status when there is one (``scaler.route_report``).

Faults hold, they never scale down: a failed measurement (Redis down) holds
the current replicas, or sets ``fallback_replicas`` after
``failures_before_fallback`` failures in a row; a Kubernetes API error backs
off (the API server's ``Retry-After`` on 429 is a floor) and leaves the
target as it is; a missing Deployment is reported, not fatal. The
BacklogScaler's status and Events are written by ``scaler.status``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scaler.actuator import Actuator, Replicas, TargetMissing
from scaler.kube import KubeError
from scaler.metrics import ScalerMetrics
from scaler.phases import next_tick, phase_s
from scaler.policy import Decision, Policy, PolicySettings
from scaler.predictor_memory import PredictorMemory
from scaler.resources import ResourceRef, condition
from scaler.route_report import Found, RouteReport
from scaler.sampling import sample_route
from scaler.status import EventWriter, StatusReporter, StatusWriter, route_status
from scaler.throttle_governor import Step
from scaler.throttle_keeper import ThrottleKeeper
from tidegate import log_context
from tidegate.backoff import backoff_s
from tidegate.errors import RedisUnavailable
from tidegate.keys import Layout
from tidegate.ledger.runner import Runner
from tidegate.ledger.store import Store
from tidegate.settings import ScalerSettings
from tidegate.tasks import stop_if_cancelled
from tidegate.throttle import Throttle

log = logging.getLogger(__name__)

API_BACKOFF_BASE_S = 1.0
API_BACKOFF_MAX_S = 30.0


@dataclass(frozen=True)
class StepResult:
    """What one step did (tests and logs read it)."""

    decision: Decision | None
    replicas: Replicas | None
    wrote: int | None
    """The replicas written, when a write was made."""
    problem: str | None
    retry_after_s: float | None = None


class RouteLoop:
    """Scales one route's target."""

    def __init__(
        self,
        route: str,
        settings: ScalerSettings,
        actuator: Actuator,
        store: Store,
        metrics: ScalerMetrics,
        *,
        is_leader: Callable[[], bool] = lambda: True,
        resource: ResourceRef | None = None,
        conditions: list[dict[str, Any]] | None = None,
        write_status: StatusWriter | None = None,
        write_event: EventWriter | None = None,
        clock: Callable[[], float] = time.monotonic,
        partitions: int = 1,
        runner: Runner | None = None,
    ) -> None:
        self.route = route
        self.layout = Layout(route, partitions)
        """The route's name and partitions: sampling and the throttle span them all."""
        self.settings = settings
        self.actuator = actuator
        self.store = store
        self.runner = runner or store.runner()
        """How the loop's reads and view writes reach Redis (batched across
        the routes of a controller)."""
        self.metrics = metrics
        self._gauges = metrics.of_route(route)
        self.is_leader = is_leader
        self.clock = clock
        self.status = StatusReporter(
            route, metrics, resource, conditions, write_status, write_event, clock
        )
        self.policy = Policy(PolicySettings.of(settings))
        self.keeper = ThrottleKeeper(self.layout, settings, store, is_leader, self.status.event)
        self.failures = 0
        self.api_failures = 0
        self.memory = PredictorMemory(route, self.policy.predictor, store, clock)
        self.report = RouteReport(
            route, settings, actuator.describe, store, self.runner, self._gauges, clock
        )

    @property
    def throttle(self) -> Throttle | None:
        """The route's throttle as this loop last wrote it."""
        return self.keeper.throttle

    async def _busy(self) -> dict[str, int]:
        """Jobs in flight per worker, as the workers report them ({}: unknown)."""
        try:
            return await self.store.liveness.busy(self.route, runner=self.runner)
        except RedisUnavailable as e:
            stop_if_cancelled(e)
            return {}

    async def _prefer_idle(self, busy: dict[str, int]) -> None:
        """Mark idle pods cheapest to delete; a failure (RBAC without pods
        patch, an API error) is logged and the scale-in goes ahead."""
        try:
            marked = await self.actuator.prefer_idle(busy)
        except KubeError as e:
            log.warning(
                "route %s: could not mark idle pods before scaling in (%s); "
                "the ReplicaSet chooses alone",
                self.route,
                e,
            )
            return
        if marked:
            log.info("route %s: marked %d pod(s) by how busy they are", self.route, marked)

    async def step(self) -> StepResult:
        started = time.perf_counter()
        try:
            return await self._step()
        finally:
            self.metrics.decision_s.observe(time.perf_counter() - started)
            self._gauges.decisions.inc()

    async def _step(self) -> StepResult:
        now = self.clock()
        try:
            replicas = await self.actuator.observe()
        except TargetMissing as e:
            await self._report_problem("TargetMissing", str(e))
            return StepResult(None, None, None, str(e))
        except KubeError as e:
            return self._api_failed(e)

        sample = await sample_route(
            self.store,
            self.layout,
            now_s=now,
            ready_replicas=replicas.ready,
            current_replicas=replicas.desired,
            runner=self.runner,
        )
        # Jobs in flight are the group's pending entries: with none, no worker
        # is busy, and the workers' records need no read (most ticks of most
        # routes); with some, which workers hold them decides the scale-in.
        busy: dict[str, int] = {}
        if sample.pending > 0:
            busy = await self._busy()
            if busy:
                in_flight = sum(1 for n in busy.values() if n > 0)
                sample = dataclasses.replace(sample, busy_replicas=in_flight)
        measured = sample.waiting is not None
        self.failures = 0 if measured else self.failures + 1
        if not measured:
            self.metrics.measure_failures.labels(self.route).inc()
        await self.memory.load()
        decision = self.policy.decide(sample)
        await self.memory.keep(self.is_leader())
        target, reason = decision.replicas, decision.reason
        fallback = self.settings.fallback_replicas
        enough = self.failures >= self.settings.failures_before_fallback
        if not measured and fallback is not None and enough:
            target = fallback
            reason = f"fallback: {self.failures} failed measurements in a row"

        wrote = None
        if self.is_leader() and target != replicas.desired:
            try:
                if target < replicas.desired:
                    busy = busy or await self._busy()
                    if busy:
                        await self._prefer_idle(busy)
                if await self.actuator.scale(target):
                    wrote = target
            except TargetMissing as e:
                await self._report_problem("TargetMissing", str(e))
                return StepResult(decision, replicas, None, str(e))
            except KubeError as e:
                return self._api_failed(e)
            if wrote is not None:
                direction = "up" if target > replicas.desired else "down"
                self.metrics.writes.labels(self.route, direction).inc()
                message = (
                    f"scaled {self.actuator.describe} from {replicas.desired} to {target}: {reason}"
                )
                log.info("route %s: %s", self.route, message)
                await self.status.event("Scaled", message, "Normal")
        self.api_failures = 0
        if measured:
            self.keeper.count_refused(now, sample.refused_total)
            await self.keeper.govern(
                Step(
                    t_s=now,
                    waiting=sample.waiting or 0,
                    arrival_rate=decision.arrival_rate,
                    refused_rate=self.keeper.refused_rate,
                    completion_rate=decision.completion_rate,
                    service_rate=decision.service_rate,
                    needed=decision.needed,
                    desired=target,
                    ready=replicas.ready,
                    max_replicas=self.settings.max_replicas,
                    drain_target_s=self.settings.drain_target_s,
                )
            )
        self.report.observe(decision, replicas, sample, self.throttle)
        if self.is_leader():
            found = Found(decision, replicas, sample, target, reason)
            await self.report.publish(found, self.throttle, self.keeper.refused_rate)
            if self.status.writes:
                fields, conditions = route_status(
                    self.route,
                    decision,
                    replicas,
                    sample,
                    target,
                    reason,
                    throttle=self.throttle,
                    failures=self.failures,
                    max_replicas=self.settings.max_replicas,
                )
                await self.status.report(fields, conditions)
        return StepResult(decision, replicas, wrote, None)

    def _api_failed(self, e: KubeError) -> StepResult:
        self.api_failures += 1
        self.metrics.api_errors.labels(self.route, str(e.status)).inc()
        log.warning("route %s: %s", self.route, e)
        delay = backoff_s(self.api_failures, API_BACKOFF_BASE_S, API_BACKOFF_MAX_S, e.retry_after_s)
        return StepResult(None, None, None, str(e), retry_after_s=delay)

    async def _report_problem(self, reason: str, message: str) -> None:
        log.warning("route %s: %s", self.route, message)
        if self.is_leader():
            await self.status.report(
                {"route": self.route}, [condition("Active", False, reason, message)]
            )

    async def run(self) -> None:
        """Step every ``interval_s`` (longer after API errors) until cancelled,
        at the route's own phase of the interval (``phase_s``).

        Steps are due at ``phase + k * interval`` on the event loop's clock,
        not an interval after the last step ended: the routes of one phase
        slot then wake in the same turn of the loop, every time, and their
        reads share a round trip (woken an interval after their own last
        step, they drifted apart within a few ticks and each read alone)."""
        log_context.ROUTE.set(self.route)  # the loop's own task: its log lines
        clock = asyncio.get_running_loop().time
        interval_s = self.settings.interval_s
        phase = phase_s(self.route, interval_s)
        await asyncio.sleep(next_tick(clock(), phase, interval_s) - clock())
        while True:
            try:
                result = await self.step()
            except Exception as e:
                stop_if_cancelled(e)
                log.exception("route %s: control step failed", self.route)
                result = StepResult(None, None, None, repr(e))
            earliest = clock()
            if result.retry_after_s is not None:
                earliest += max(0.0, result.retry_after_s - interval_s)
            await asyncio.sleep(next_tick(earliest, phase, interval_s) - clock())
