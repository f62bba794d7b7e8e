"""Prometheus metrics of the gateway, on a registry of its own.

A registry per gateway (not the process-global default) keeps tests and
several in-process gateways from sharing counters.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from tidegate.registry import new_registry
from tidegate.stages import stage_histogram

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class RouteMetrics:
    """One route's children of the hot-path metrics, looked up once (``labels()``
    costs a lock and a dict lookup per call)."""

    admitted: Counter
    duplicates: Counter
    admission_latency: Histogram
    waits_result: Counter
    waits_timeout: Counter
    notified: Histogram
    """The ``notified`` stage of ``tidegate_job_stage_seconds``."""


class GatewayMetrics:
    def __init__(self) -> None:
        self._routes: dict[str, RouteMetrics] = {}
        self._proxied: dict[tuple[str, int], Counter] = {}
        self.registry = new_registry()
        self.throttled = Counter(
            "tidegate_gateway_throttled",
            "Requests refused by a token bucket, by cause (capacity, quota) and tenant.",
            ["route", "cause", "tenant"],
            registry=self.registry,
        )
        self.throttle_active = Gauge(
            "tidegate_gateway_throttle_active",
            "1 while the route's capacity throttle is set (as this gateway last saw it).",
            ["route"],
            registry=self.registry,
        )
        self.throttle_rate = Gauge(
            "tidegate_gateway_throttle_rate",
            "The route's throttle rate in admissions per second (0: not throttled).",
            ["route"],
            registry=self.registry,
        )
        self.throttle_tokens = Gauge(
            "tidegate_gateway_throttle_bucket_tokens",
            "Tokens in the route's shared bucket at this gateway's last read (0: no throttle).",
            ["route"],
            registry=self.registry,
        )
        self.admitted = Counter(
            "tidegate_gateway_admitted",
            "Requests admitted into a route's queue (duplicates by Idempotency-Key excluded).",
            ["route"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "tidegate_gateway_idempotent_replays",
            "Requests answered with an existing job because of their Idempotency-Key.",
            ["route"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "tidegate_gateway_rejected",
            "Requests refused, by reason.",
            ["route", "reason"],
            registry=self.registry,
        )
        self.admission_latency = Histogram(
            "tidegate_gateway_admission_seconds",
            "Time from a request's arrival to its job being durable in Redis.",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.sync_waits = Counter(
            "tidegate_gateway_sync_waits",
            "Synchronous waits for a result, by outcome (result, timeout).",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "tidegate_gateway_in_flight_requests",
            "Requests being handled right now.",
            registry=self.registry,
        )
        self.stages = stage_histogram(self.registry)
        """The gateway's stage of a job: notified (``tidegate.stages``)."""
        self.proxied = Counter(
            "tidegate_gateway_proxied",
            "Requests forwarded by proxy routes, by upstream status class.",
            ["route", "status_class"],
            registry=self.registry,
        )

    def proxied_as(self, route: str, status: int) -> Counter:
        """The route's ``proxied`` child for an upstream status, looked up once."""
        key = (route, status // 100)
        found = self._proxied.get(key)
        if found is None:
            found = self._proxied[key] = self.proxied.labels(route, f"{status // 100}xx")
        return found

    def route(self, name: str) -> RouteMetrics:
        found = self._routes.get(name)
        if found is None:
            found = self._routes[name] = RouteMetrics(
                admitted=self.admitted.labels(name),
                duplicates=self.duplicates.labels(name),
                admission_latency=self.admission_latency.labels(name),
                waits_result=self.sync_waits.labels(name, "result"),
                waits_timeout=self.sync_waits.labels(name, "timeout"),
                notified=self.stages.labels(name, "notified"),
            )
        return found
