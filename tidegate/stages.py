"""Where a job's time goes: its stages, one histogram for all parts.

``tidegate_job_stage_seconds{route,stage}``, each stage measured by the part
that sees it end:

- ``queued`` (worker): from admission (the stream entry's time) to the
  moment a worker took the job;
- ``started`` (worker): recording the start (the ``started`` event);
- ``upstream`` (worker): the attempt's work, the upstream call or the
  handler (also kept in the outcome's event as ``upstream_ms``);
- ``finished`` (worker): recording the outcome (result, event, XACK and the
  done notification, one script call);
- ``notified`` (gateway): from the outcome's event to the waiting sync
  request reading it, which includes the notification's trip.

``queued`` and ``notified`` compare clocks of two machines (Redis's
server time in stream ids against the part's wall clock); with clock skew
they are off by the skew (never below 0 here).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

STAGES = ("queued", "started", "upstream", "finished", "notified")

STAGE_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


def stage_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "tidegate_job_stage_seconds",
        "Time of each stage of a job (queued, started, upstream, finished, notified).",
        ["route", "stage"],
        buckets=STAGE_BUCKETS_S,
        registry=registry,
    )


def since_ms(at_ms: int, now_s: float) -> float:
    """Seconds from a Redis time in ms to a wall-clock time, never below 0."""
    return max(0.0, now_s - at_ms / 1000)
