"""The arithmetic of rates, written once: smoothing, counters, Little's law.

- ``ewma``: exponentially weighted moving average with weight ``weight`` on
  the newest value (the first value is taken as is);
- ``per_second``: the rate of a counter that only grows, between two
  readings (a counter reset counts as zero, never negative);
- ``replicas_for``: Little's law with a deadline. Serving ``arrival`` per
  second and draining ``waiting`` entries within ``drain_target_s`` at
  ``service`` per second per replica takes
  ``ceil((arrival + waiting / drain_target_s) / service)`` replicas.
"""

from __future__ import annotations

import math

EPSILON = 1e-9
"""Rounding slack: 3.0000000001 replicas are 3, not 4."""


def ewma(old: float | None, new: float, weight: float) -> float:
    return new if old is None else weight * new + (1 - weight) * old


def per_second(before: tuple[float, int], now_s: float, total: int) -> float | None:
    """Growth of a counter per second since ``before`` (time, value); None
    when no time has passed."""
    then_s, was = before
    if now_s <= then_s:
        return None
    return max(0, total - was) / (now_s - then_s)


def replicas_for(arrival: float, waiting: float, drain_target_s: float, service: float) -> int:
    return math.ceil((arrival + waiting / drain_target_s) / service - EPSILON)
