"""Arrival traces for the simulator: the shapes of load a scaler must follow.

Each trace is a rate of arrivals per second as a function of time: a step,
two short spikes, a ramp up and down, a sinusoidal day, random bursts drawn
from a seeded generator (so runs repeat exactly), and bursts that repeat
every five minutes (what prediction is for).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

Rate = Callable[[float], float]


@dataclass(frozen=True)
class Trace:
    name: str
    duration_s: float
    rate: Rate
    description: str
    warmup_s: float = 0.0
    """The first seconds only teach: waits, cost and changes count after them."""


def _step(t: float) -> float:
    return 100.0 if 120 <= t < 1200 else 5.0


def _spike(t: float) -> float:
    return 250.0 if 300 <= t < 330 or 1200 <= t < 1230 else 10.0


def _ramp(t: float) -> float:
    if t < 1200:
        return 200.0 * t / 1200
    return max(0.0, 200.0 * (1 - (t - 1200) / 600))


def _day(t: float) -> float:
    return 60.0 + 55.0 * math.sin(2 * math.pi * t / 7200 - math.pi / 2)


def _bursty(seed: int = 7) -> Rate:
    rng = random.Random(seed)
    bursts: list[tuple[float, float, float]] = []
    t = 0.0
    while t < 3600:
        t += rng.expovariate(1 / 120)
        length = rng.uniform(10, 40)
        bursts.append((t, t + length, rng.uniform(100, 250)))
        t += length

    def rate(now: float) -> float:
        extra = sum(r for a, b, r in bursts if a <= now < b)
        return 20.0 + extra

    return rate


def _periodic(t: float) -> float:
    return 200.0 if t % 300 < 30 else 20.0


TRACES = (
    Trace("step", 1800, _step, "5/s, then 100/s from 120 s to 1200 s, then 5/s"),
    Trace("spike", 1800, _spike, "10/s with two 30 s spikes of 250/s"),
    Trace("ramp", 1800, _ramp, "0 -> 200/s over 20 min, back to 0 over 10 min"),
    Trace("day", 7200, _day, "sinusoidal 5..115/s, one 'day' in 2 h"),
    Trace("bursty", 3600, _bursty(), "20/s with random bursts of 100-250/s for 10-40 s"),
    Trace(
        "periodic",
        7200,
        _periodic,
        "20/s with a 30 s burst of 200/s every 5 min; the second hour counts",
        warmup_s=3600,
    ),
)
