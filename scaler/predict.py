"""Prediction of a repeating arrival pattern (``scaler.predict: periodic``).

Some routes see the same load at the same time of every period: a batch job
every five minutes, a report each hour, a daily peak. A reactive policy
meets each such burst a pod start-up late. This predictor learns the pattern
from the route's own arrival history and says what will arrive a start-up
time from now, so replicas are ready when the burst comes.

- **History.** Arrival rates are kept as means over ``bucket_s`` buckets
  (10 s), at most ``max_period_s`` x 3 of them. The scaler stores closed
  buckets in Redis (``tg:{route}:arrivals``), so a new leader or a restarted
  scaler starts with the pattern learned (``scaler.history``).
- **Period.** The lag with the highest autocorrelation of the history
  between ``min_period_s`` and ``max_period_s``, searched at most once per
  ``search_every_s`` over a series coarsened to at most ``MAX_POINTS``
  points (a day of 10 s buckets would be too many to correlate in Python).
  It counts only when at least two periods are there and the correlation is
  at least ``min_correlation``.
- **Prediction.** The highest rate one period ago over the time from now
  to ``ahead_s`` (the start-up time) plus a bucket later: what the last
  period did next.
- **Fallback.** The pattern is trusted only while it holds: the last period
  must correlate with the one before at least ``min_correlation``. When the
  pattern breaks, ``predict`` says None and the policy is reactive alone.

Pure: no I/O, no clock; time comes in with each observation.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MAX_POINTS = 720
"""The period search correlates a series of at most this many points."""


@dataclass(frozen=True)
class PredictSettings:
    bucket_s: float = 10.0
    min_period_s: float = 60.0
    max_period_s: float = 86400.0
    min_correlation: float = 0.6
    search_every_s: float = 600.0


def correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson's correlation of two equal-length series (0 when either is flat)."""
    n = len(a)
    if n < 2:
        return 0.0
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    if va <= 0 or vb <= 0:
        return 0.0
    return cov / math.sqrt(va * vb)


def _coarsen(series: Sequence[float], factor: int) -> list[float]:
    return [
        sum(series[i : i + factor]) / len(series[i : i + factor])
        for i in range(0, len(series), factor)
    ]


@dataclass
class PeriodicPredictor:
    settings: PredictSettings = field(default_factory=PredictSettings)
    series: deque[float] = field(default_factory=deque)
    """Closed buckets, oldest first."""
    period_buckets: int | None = None
    strength: float = 0.0
    """The autocorrelation at the period found."""
    _bucket_start_s: float | None = None
    _sum: float = 0.0
    _count: int = 0
    _searched_s: float | None = None
    _now_s: float = 0.0
    _holds: bool = False
    """Whether the pattern held, as of the last closed bucket."""
    closed: list[tuple[float, float]] = field(default_factory=list)
    """Buckets closed since the caller last took them (start, rate): to store."""

    def __post_init__(self) -> None:
        self.series = deque(self.series, maxlen=self.keep)

    @property
    def keep(self) -> int:
        """Buckets kept: three of the longest period."""
        return int(3 * self.settings.max_period_s / self.settings.bucket_s)

    def load(self, buckets: Iterable[float]) -> None:
        """History kept elsewhere (Redis), oldest first: learned from at once."""
        self.series.extend(buckets)
        self._search()
        self._holds = self._check()

    def observe(self, t_s: float, rate: float) -> None:
        bucket_s = self.settings.bucket_s
        self._now_s = t_s
        if self._bucket_start_s is None:
            self._bucket_start_s = t_s - t_s % bucket_s
        closed = False
        while t_s >= self._bucket_start_s + bucket_s:
            last = self.series[-1] if self.series else 0.0
            mean = self._sum / self._count if self._count else last
            self.series.append(mean)
            self.closed.append((self._bucket_start_s, mean))
            self._bucket_start_s += bucket_s
            self._sum, self._count = 0.0, 0
            closed = True
        self._sum += rate
        self._count += 1
        if self._searched_s is None or t_s - self._searched_s >= self.settings.search_every_s:
            self._searched_s = t_s
            self._search()
            closed = True
        if closed:
            self._holds = self._check()

    def _search(self) -> None:
        s = self.settings
        series = list(self.series)
        low = max(2, math.ceil(s.min_period_s / s.bucket_s))
        high = min(int(s.max_period_s / s.bucket_s), len(series) // 2)
        self.period_buckets, self.strength = None, 0.0
        if high < low:
            return
        factor = max(1, math.ceil(len(series) / MAX_POINTS))
        coarse = _coarsen(series, factor)
        best, best_lag = s.min_correlation, None
        for lag in range(max(1, low // factor), high // factor + 1):
            if len(coarse) - lag < 2:
                break
            c = correlation(coarse[lag:], coarse[:-lag])
            if c > best + 1e-9:
                best, best_lag = c, lag
        if best_lag is None:
            return
        # Refine at full resolution around the coarse lag.
        candidates = range(
            max(low, (best_lag - 1) * factor), min(high, (best_lag + 1) * factor) + 1
        )
        refined = max(candidates, key=lambda lag: correlation(series[lag:], series[:-lag]))
        self.period_buckets = refined
        self.strength = correlation(series[refined:], series[:-refined])

    def holding(self) -> bool:
        """The last period repeated the one before it (as of the last bucket)."""
        return self._holds

    def _check(self) -> bool:
        p = self.period_buckets
        if p is None or len(self.series) < 2 * p or self.strength < self.settings.min_correlation:
            return False
        series = list(self.series)
        return correlation(series[-p:], series[-2 * p : -p]) >= self.settings.min_correlation

    def predict(self, ahead_s: float) -> float | None:
        """The highest rate the last period saw over the next ``ahead_s``
        (plus a bucket) from now; None without a pattern that holds."""
        if not self.holding():
            return None
        p = self.period_buckets
        assert p is not None
        series = list(self.series)
        # The current (open) bucket, one period ago, is series[-p]; cover it
        # and the buckets up to now + ahead_s + a bucket.
        into = self._now_s - (self._bucket_start_s or self._now_s)
        steps = math.ceil((into + ahead_s) / self.settings.bucket_s) + 1
        window = [series[-p + k] for k in range(steps) if -p + k < 0]
        return max(window) if window else None
