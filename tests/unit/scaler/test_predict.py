"""The periodic predictor: finding a period, predicting ahead, letting go
when the pattern breaks (fake time: observations carry their own)."""

from __future__ import annotations

from collections.abc import Callable

from scaler.predict import PeriodicPredictor, PredictSettings, correlation


def burst(t_s: float) -> float:
    return 200.0 if t_s % 300 < 30 else 20.0


def fed(until_s: float, rate: Callable[[float], float] = burst) -> PeriodicPredictor:
    """A predictor that has seen ``rate`` every second until ``until_s``."""
    p = PeriodicPredictor(PredictSettings(search_every_s=60, max_period_s=3600))
    t = 0.0
    while t < until_s:
        p.observe(t, rate(t))
        t += 1.0
    return p


def test_correlation() -> None:
    assert correlation([1, 2, 3], [2, 4, 6]) == 1.0
    assert correlation([1, 2, 3], [3, 2, 1]) == -1.0
    assert correlation([1, 1, 1], [1, 2, 3]) == 0.0  # flat: no signal


def test_no_period_before_two_of_them_are_seen() -> None:
    p = fed(500)
    assert p.predict(10) is None


def test_the_period_is_found_and_the_next_burst_predicted_ahead() -> None:
    p = fed(3 * 300 + 280)  # 20 s before the fourth period's burst
    assert p.period_buckets is not None
    assert (p.period_buckets * 10) % 300 == 0
    assert p.holding()
    predicted = p.predict(ahead_s=15)
    assert predicted is not None
    assert predicted >= 190  # the burst of one period ago, 20-30 s ahead
    quiet = fed(3 * 300 + 100)  # mid-period: the next 25 s were quiet last time
    assert quiet.predict(ahead_s=15) == 20.0


def test_a_broken_pattern_is_let_go() -> None:
    p = fed(3 * 300 + 200)
    assert p.holding()
    start = 3 * 300 + 200.0

    def flat(t: float) -> float:
        return 20.0 + (t % 7)  # the bursts stop

    t = start
    while t < start + 400:
        p.observe(t, flat(t))
        t += 1.0
    assert not p.holding()
    assert p.predict(ahead_s=15) is None


def test_loaded_history_teaches_at_once() -> None:
    """A scaler that starts with the route's history (from Redis) predicts
    from its first observations."""
    learned = fed(3 * 300)
    fresh = PeriodicPredictor(PredictSettings(search_every_s=60, max_period_s=3600))
    fresh.load(list(learned.series))
    fresh.observe(900.0, 20.0)
    assert fresh.period_buckets == learned.period_buckets
    assert fresh.holding()
