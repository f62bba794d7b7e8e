"""Prometheus metrics of a worker process, on a registry of its own.

Served on ``--metrics-listen HOST:PORT`` (off unless asked for: several
workers on one host, as in the demo, would fight over a fixed port).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import Counter, Gauge

from tidegate.admin_server import serve_admin
from tidegate.registry import new_registry
from tidegate.stages import stage_histogram


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = new_registry()
        self.attempts = Counter(
            "tidegate_worker_attempts",
            "Attempts started, by outcome (succeeded, retried, dead_lettered).",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.skipped = Counter(
            "tidegate_worker_skipped",
            "Entries acknowledged without work: job already ended, cancelled or gone.",
            ["route"],
            registry=self.registry,
        )
        self.reclaims = Counter(
            "tidegate_worker_reclaims",
            "Entries taken over from a consumer that held them past the visibility timeout.",
            ["route"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "tidegate_worker_dead_letters",
            "Jobs dead-lettered (attempts exhausted or a final failure).",
            ["route"],
            registry=self.registry,
        )
        self.compensations = Counter(
            "tidegate_worker_compensations",
            "Compensation calls, by outcome (compensated, failed, none_configured).",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.reconciled = Counter(
            "tidegate_worker_reconciled",
            "Reconciler actions on jobs past their deadline without an outcome.",
            ["route", "action"],
            registry=self.registry,
        )
        self.callbacks = Counter(
            "tidegate_worker_callbacks",
            "Completion callback attempts, by outcome: delivered, retried, failed (given "
            "up after callback.give_up_after_s), refused (an address no callback may reach).",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "tidegate_worker_in_flight_jobs",
            "Jobs running in this process.",
            ["route"],
            registry=self.registry,
        )
        self.stages = stage_histogram(self.registry)
        """queued, started, upstream (the attempt's work: the upstream call or
        the handler), finished (``tidegate.stages``)."""

    def start_at_zero(self, route: str) -> None:
        """Create the route's counters that alerts and rates use, at 0, before
        anything happens: a rate over a series that appears with its first
        event misses that event (the first dead letter of a new pod would not
        alert)."""
        for outcome in ("succeeded", "retried", "dead_lettered"):
            self.attempts.labels(route, outcome)
        for outcome in ("compensated", "failed", "none_configured"):
            self.compensations.labels(route, outcome)
        for outcome in ("delivered", "retried", "failed", "refused", "deferred"):
            self.callbacks.labels(route, outcome)
        for action in ("expired", "requeued"):
            self.reconciled.labels(route, action)
        self.dead_letters.labels(route)
        self.skipped.labels(route)
        self.reclaims.labels(route)


async def serve_metrics(metrics: WorkerMetrics, host: str, port: int) -> web.AppRunner:
    return await serve_admin(metrics.registry, host, port)
