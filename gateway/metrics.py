"""Prometheus metrics of the gateway, on a registry of its own.

A registry per gateway (not the process-global default) keeps tests and
several in-process gateways from sharing counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.proxied = Counter(
            "tidegate_gateway_proxied",
            "Requests forwarded by proxy routes, by upstream status class.",
            ["route", "status_class"],
            registry=self.registry,
        )
