"""The control loop: one task per scaled route, sampling, deciding, writing.

Each route runs on its own ``interval_s``:

1. observe the target's replicas (actuator);
2. sample the route in Redis (``scaler.sampling``);
3. decide (``scaler.policy``, pure);
4. if this replica leads (``is_leader``) and the decision differs from what
   the target is asked to run: write it, emit an Event;
5. keep the throttle in line (``scaler.throttle``: set,
   re-rate or lift it when scaling is exhausted or has recovered);
6. publish the route's view in Redis (``tidegate.scaler_view``), update
   metrics, and the BacklogScaler's status when there is one.

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
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scaler.actuator import Actuator, Replicas, TargetMissing
from scaler.exhaustion import Step
from scaler.kube import KubeError
from scaler.metrics import ScalerMetrics
from scaler.policy import Decision, Policy, PolicySettings, Sample
from scaler.resources import ResourceRef, condition
from scaler.sampling import sample_route
from scaler.status import EventWriter, StatusReporter, StatusWriter, route_status
from scaler.throttle import ThrottleKeeper
from tidegate import log_context
from tidegate.backoff import backoff_s
from tidegate.errors import RedisUnavailable
from tidegate.keys import Layout
from tidegate.ledger.runner import Runner
from tidegate.ledger.store import Store
from tidegate.scaler_view import ScalerView
from tidegate.settings import ScalerSettings
from tidegate.tasks import stop_if_cancelled
from tidegate.throttle import Throttle

log = logging.getLogger(__name__)

VIEW_REFRESH_INTERVALS = 4
"""An unchanged view is written again after this many intervals (its TTL is
five, at least 10 s), so its ``updated_at_s`` stays that fresh."""

API_BACKOFF_BASE_S = 1.0
API_BACKOFF_MAX_S = 30.0


PHASE_SLOTS = 10
"""Routes step in this many slots of their interval."""


def phase_s(route: str, interval_s: float) -> float:
    """Where in its interval a route's loop steps: one of ``PHASE_SLOTS``
    slots, drawn from the route's name (CRC-32). A thousand routes spread
    their Redis reads and API calls over the interval instead of sending them
    in the same millisecond, while the routes of one slot step together and
    share their round trips (the controller's batched ``Runner``); a route
    keeps its slot across restarts."""
    return (zlib.crc32(route.encode()) % PHASE_SLOTS) / PHASE_SLOTS * interval_s


def next_tick(after: float, phase: float, interval_s: float) -> float:
    """The first time ``phase + k * interval_s`` (k whole) after ``after``."""
    return phase + (math.floor((after - phase) / interval_s) + 1) * interval_s


def policy_settings(s: ScalerSettings) -> PolicySettings:
    return PolicySettings(
        min_replicas=s.min_replicas,
        max_replicas=s.max_replicas,
        drain_target_s=s.drain_target_s,
        scale_down_window_s=s.scale_down_window_s,
        tolerance=s.tolerance,
        lag_per_replica=s.lag_per_replica,
        activation_backlog=s.activation_backlog,
        predict=s.predict == "periodic",
    )


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
        self._seen: tuple[Any, ...] | None = None
        """What the gauges were last set from."""
        self.is_leader = is_leader
        self.clock = clock
        self.status = StatusReporter(
            route, metrics, resource, conditions, write_status, write_event, clock
        )
        self.policy = Policy(policy_settings(settings))
        self.keeper = ThrottleKeeper(self.layout, settings, store, is_leader, self.status.event)
        self.failures = 0
        self.api_failures = 0
        self._history_loaded = False
        self._view: ScalerView | None = None
        """The view last published (its time left out), and when."""
        self._view_at = float("-inf")
        self._encoded: dict[str, str] | None = None
        """Its stored fields: refreshing an unchanged view re-encodes only the time."""

    @property
    def throttle(self) -> Throttle | None:
        """The route's throttle as this loop last wrote it."""
        return self.keeper.throttle

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

    async def _load_history(self) -> None:
        """Once: the arrival history a predictor learns from (kept in Redis)."""
        predictor = self.policy.predictor
        if predictor is None or self._history_loaded:
            return
        try:
            bucket_s = predictor.settings.bucket_s
            found = await self.store.history.load(self.route, predictor.keep, bucket_s, time.time())
            predictor.load(found)
        except RedisUnavailable as e:
            stop_if_cancelled(e)
            return  # tried again next step
        self._history_loaded = True

    async def _store_history(self) -> None:
        """The leader keeps the buckets the predictor closed; others drop them."""
        predictor = self.policy.predictor
        if predictor is None or not predictor.closed:
            return
        closed, predictor.closed = predictor.closed, []
        if not self.is_leader():
            return
        to_wall = time.time() - self.clock()  # bucket starts are on the loop's clock
        wall = [(start + to_wall, rate) for start, rate in closed]
        try:
            await self.store.history.store(self.route, wall, predictor.keep)
        except RedisUnavailable as e:
            stop_if_cancelled(e)

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
        await self._load_history()
        decision = self.policy.decide(sample)
        await self._store_history()
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
        self._observe(decision, replicas, sample)
        if self.is_leader():
            await self._publish(decision, replicas, sample, target, reason)
        return StepResult(decision, replicas, wrote, None)

    def _api_failed(self, e: KubeError) -> StepResult:
        self.api_failures += 1
        self.metrics.api_errors.labels(self.route, str(e.status)).inc()
        log.warning("route %s: %s", self.route, e)
        delay = backoff_s(self.api_failures, API_BACKOFF_BASE_S, API_BACKOFF_MAX_S, e.retry_after_s)
        return StepResult(None, None, None, str(e), retry_after_s=delay)

    def _observe(self, decision: Decision, replicas: Replicas, sample: Sample) -> None:
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
            self.throttle,
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
        g.throttle_rate.set(self.throttle.rate_per_s if self.throttle else 0)

    async def _publish(
        self,
        decision: Decision,
        replicas: Replicas,
        sample: Sample,
        target: int,
        reason: str,
    ) -> None:
        waiting, pending = sample.waiting, sample.pending
        age = None if sample.oldest_age_s is None else round(sample.oldest_age_s, 3)
        view = ScalerView(
            waiting=waiting,
            pending=pending,
            oldest_waiting_age_s=age,
            arrival_rate=round(decision.arrival_rate, 3),
            drain_rate=round(decision.completion_rate, 3),
            service_rate=None if decision.service_rate is None else round(decision.service_rate, 3),
            desired_replicas=target,
            needed_replicas=decision.needed,
            current_replicas=replicas.current,
            ready_replicas=replicas.ready,
            max_replicas=self.settings.max_replicas,
            exhausted=decision.exhausted,
            reason=reason,
            target=self.actuator.describe,
            throttle=self.throttle.as_dict() if self.throttle else None,
            refused_rate=round(self.keeper.refused_rate, 3),
            updated_at_s=0.0,  # set when written
            predicted_rate=(
                None if decision.predicted_rate is None else round(decision.predicted_rate, 3)
            ),
        )
        await self._publish_view(view)
        if not self.status.writes:
            return
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
