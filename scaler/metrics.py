"""Prometheus metrics of the scaler, on a registry of its own.

A scaler may keep a thousand routes, and every series of a route is a line
of every scrape and a series in Prometheus: a route has its gauges and one
counter of decisions (13 lines with the counter's ``_created``), not a
histogram of its own. How long steps take is one histogram for all routes;
a route whose steps fail shows in its API error and measurement failure
counters. (With a histogram per route, 1000 routes were 26,000 lines and a
scrape took 300 ms of CPU.)
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import Counter, Gauge, Histogram

from tidegate.registry import new_registry

DECISION_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RouteGauges(NamedTuple):
    """One route's series, looked up once (a label lookup per gauge per tick
    was a tenth of an idle route's cost)."""

    waiting: Gauge
    pending: Gauge
    oldest_age: Gauge
    arrival: Gauge
    drain: Gauge
    service: Gauge
    desired: Gauge
    current: Gauge
    ready: Gauge
    exhausted: Gauge
    throttle_rate: Gauge
    decisions: Counter


class ScalerMetrics:
    def __init__(self) -> None:
        self.registry = r = new_registry()
        route = ["route"]
        self.waiting = Gauge("tidegate_scaler_lag", "Entries not yet delivered.", route, registry=r)
        self.pending = Gauge(
            "tidegate_scaler_pending", "Entries delivered, not yet acknowledged.", route, registry=r
        )
        self.oldest_age = Gauge(
            "tidegate_scaler_oldest_waiting_age_seconds",
            "How long the oldest waiting entry has waited (0: none waits).",
            route,
            registry=r,
        )
        self.arrival = Gauge(
            "tidegate_scaler_arrival_rate",
            "Entries added per second (smoothed).",
            route,
            registry=r,
        )
        self.drain = Gauge(
            "tidegate_scaler_drain_rate",
            "Entries completed per second (smoothed).",
            route,
            registry=r,
        )
        self.service = Gauge(
            "tidegate_scaler_service_rate",
            "Learned completions per second per replica (0 until learned).",
            route,
            registry=r,
        )
        self.desired = Gauge(
            "tidegate_scaler_desired_replicas", "Replicas the policy asks for.", route, registry=r
        )
        self.current = Gauge(
            "tidegate_scaler_current_replicas", "Replicas the target has.", route, registry=r
        )
        self.ready = Gauge(
            "tidegate_scaler_ready_replicas", "Replicas ready to work.", route, registry=r
        )
        self.exhausted = Gauge(
            "tidegate_scaler_exhausted",
            "1 while the route needs more replicas than it may have.",
            route,
            registry=r,
        )
        self.throttle_rate = Gauge(
            "tidegate_scaler_throttle_rate",
            "The route's front-door throttle in admissions per second (0: not throttled).",
            route,
            registry=r,
        )
        self.decision_s = Histogram(
            "tidegate_scaler_decision_seconds",
            "One control step of any route: observe, sample, decide, write.",
            buckets=DECISION_BUCKETS_S,
            registry=r,
        )
        self.decisions = Counter(
            "tidegate_scaler_decisions",
            "Control steps taken (each observes, samples, decides and may write).",
            route,
            registry=r,
        )
        self.writes = Counter(
            "tidegate_scaler_scale_writes",
            "Scale writes, by direction (up, down).",
            ["route", "direction"],
            registry=r,
        )
        self.api_errors = Counter(
            "tidegate_scaler_api_errors",
            "Kubernetes API errors, by HTTP status (0: unreachable).",
            ["route", "status"],
            registry=r,
        )
        self.measure_failures = Counter(
            "tidegate_scaler_measurement_failures",
            "Samples that could not be taken (Redis unreachable).",
            route,
            registry=r,
        )
        self.shards_held = Gauge(
            "tidegate_scaler_shards_held",
            "Shards of routes this replica leads (scaler.shards above 1).",
            registry=r,
        )
        self.leader = Gauge(
            "tidegate_scaler_leader",
            "1 while this replica holds the lease (with shards: at least one).",
            registry=r,
        )

    def of_route(self, route: str) -> RouteGauges:
        return RouteGauges(
            waiting=self.waiting.labels(route),
            pending=self.pending.labels(route),
            oldest_age=self.oldest_age.labels(route),
            arrival=self.arrival.labels(route),
            drain=self.drain.labels(route),
            service=self.service.labels(route),
            desired=self.desired.labels(route),
            current=self.current.labels(route),
            ready=self.ready.labels(route),
            exhausted=self.exhausted.labels(route),
            throttle_rate=self.throttle_rate.labels(route),
            decisions=self.decisions.labels(route),
        )
