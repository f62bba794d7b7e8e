"""The metrics registry every part starts from.

Each part (gateway, worker, scaler) keeps its metrics on a registry of its
own (tests run several in one process), and each registry starts with what
operators expect of any process: ``tidegate_build_info{version,python}``
(always 1: join on it to see which version runs where) and the standard
process metrics (``process_cpu_seconds_total``, resident memory, open file
descriptors, start time) and Python's (``python_info``).
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Gauge, PlatformCollector, ProcessCollector

from tidegate import __version__


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge(
        "tidegate_build_info",
        "Always 1; the labels say which tidegate and Python run here.",
        ["version", "python"],
        registry=registry,
    ).labels(__version__, platform.python_version()).set(1)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
