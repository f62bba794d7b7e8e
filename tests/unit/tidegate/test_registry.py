"""Every part's metrics start with the build, the process, and (worker) its
alerting series at 0."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway.metrics import GatewayMetrics
from scaler.metrics import ScalerMetrics
from tidegate import __version__
from worker.metrics import WorkerMetrics


@pytest.mark.parametrize("part", [GatewayMetrics, WorkerMetrics, ScalerMetrics])
def test_every_part_tells_its_build_and_process(part: type) -> None:
    registry: CollectorRegistry = part().registry
    text = generate_latest(registry).decode()
    assert 'tidegate_build_info{python="' in text
    assert f'version="{__version__}"' in text
    assert registry.get_sample_value("process_cpu_seconds_total") is not None
    assert registry.get_sample_value("process_resident_memory_bytes") is not None


def test_a_worker_s_alerting_series_exist_at_zero_before_any_job() -> None:
    metrics = WorkerMetrics()
    assert (
        metrics.registry.get_sample_value("tidegate_worker_dead_letters_total", {"route": "orders"})
        is None
    )
    metrics.start_at_zero("orders")
    for name, labels in [
        ("tidegate_worker_dead_letters_total", {"route": "orders"}),
        ("tidegate_worker_compensations_total", {"route": "orders", "outcome": "failed"}),
        ("tidegate_worker_attempts_total", {"route": "orders", "outcome": "dead_lettered"}),
    ]:
        assert metrics.registry.get_sample_value(name, labels) == 0.0, name
