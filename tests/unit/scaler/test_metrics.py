"""What a route costs a scrape of the scaler's /metrics: a thousand routes
make every series of a route a thousand lines of every scrape."""

from __future__ import annotations

from prometheus_client import generate_latest

from scaler.metrics import ScalerMetrics

ROUTE_LINES_MOST = 13
"""11 gauges, and the decisions counter with its ``_created``."""


def lines_of(text: str, route: str) -> list[str]:
    return [line for line in text.splitlines() if f'route="{route}"' in line]


def test_a_route_adds_its_gauges_and_one_counter_to_a_scrape() -> None:
    metrics = ScalerMetrics()
    series = metrics.of_route("orders")
    series.decisions.inc()
    metrics.decision_s.observe(0.002)
    text = generate_latest(metrics.registry).decode()
    lines = lines_of(text, "orders")
    assert len(lines) <= ROUTE_LINES_MOST, "\n".join(lines)
    assert 'tidegate_scaler_decisions_total{route="orders"} 1.0' in lines
    # How long steps take is one histogram for all routes, not one per route.
    assert "tidegate_scaler_decision_seconds_count 1.0" in text
