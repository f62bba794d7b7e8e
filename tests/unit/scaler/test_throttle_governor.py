"""The throttle decision with fake time: engage, rate, re-learn, lift."""

from __future__ import annotations

from typing import Any

from scaler.throttle_governor import Step, ThrottleGovernor
from tidegate.settings import ThrottleSettings

SETTINGS = ThrottleSettings(
    margin=0.1, min_rate_per_s=2, ready_grace_s=30, low_water_s=5, hold_s=20
)


def step(t_s: float, **kw: Any) -> Step:
    values: dict[str, Any] = {
        "t_s": t_s,
        "waiting": 0,
        "arrival_rate": 0.0,
        "refused_rate": 0.0,
        "completion_rate": 0.0,
        "service_rate": 10.0,
        "needed": 1,
        "desired": 4,
        "ready": 4,
        "max_replicas": 4,
        "drain_target_s": 30.0,
    }
    values.update(kw)
    return Step(**values)


def test_engages_at_max_replicas_when_the_backlog_would_not_drain() -> None:
    gov = ThrottleGovernor(SETTINGS)
    # 4 replicas x 10/s = 40/s of capacity against 60/s offered: it grows.
    verdict = gov.decide(step(0, waiting=500, arrival_rate=60))
    assert verdict.rate_per_s == 36.0  # 40 x (1 - 0.1): the backlog shrinks
    assert verdict.reason == "max_replicas"
    assert verdict.changed
    assert "needs" in verdict.detail


def test_no_throttle_while_scaling_can_still_help_or_the_backlog_drains() -> None:
    gov = ThrottleGovernor(SETTINGS)
    # Needs more than 4 but may have 10: scaling will do it.
    assert gov.decide(step(0, waiting=500, arrival_rate=60, max_replicas=10)).rate_per_s is None
    # At max, but the backlog drains within the target (40/s - 30/s = 10/s; 200 in 20 s).
    assert gov.decide(step(1, waiting=200, arrival_rate=30)).rate_per_s is None
    # Disabled by configuration.
    off = ThrottleGovernor(ThrottleSettings(enabled=False))
    assert off.decide(step(0, waiting=500, arrival_rate=60)).rate_per_s is None


def test_replicas_that_cannot_start_exhaust_scaling_after_the_grace() -> None:
    gov = ThrottleGovernor(SETTINGS)
    short = {"waiting": 900, "arrival_rate": 30, "desired": 8, "ready": 2, "max_replicas": 10}
    assert gov.decide(step(0, **short)).rate_per_s is None  # pods may still come up
    assert gov.decide(step(29, **short)).rate_per_s is None
    verdict = gov.decide(step(30, **short))
    assert verdict.reason == "replicas_not_ready"
    assert verdict.rate_per_s == 18.0  # 2 ready x 10/s x 0.9


def test_the_rate_follows_the_capacity_never_below_the_minimum() -> None:
    gov = ThrottleGovernor(SETTINGS)
    gov.decide(step(0, waiting=500, arrival_rate=60))
    same = gov.decide(step(1, waiting=500, arrival_rate=36, service_rate=10.2))
    assert same.rate_per_s == 36.0  # within 5%: not rewritten
    assert not same.changed
    slower = gov.decide(step(2, waiting=500, arrival_rate=36, service_rate=5))
    assert slower.rate_per_s == 18.0
    assert slower.changed
    stalled = gov.decide(step(3, waiting=500, arrival_rate=2, service_rate=None, ready=0))
    assert stalled.rate_per_s == 2.0  # the configured minimum


def test_offered_load_counts_what_the_throttle_refused() -> None:
    gov = ThrottleGovernor(SETTINGS)
    gov.decide(step(0, waiting=500, arrival_rate=60))
    # Admitted arrivals are held at 36/s, but 30/s more were refused: the
    # need (66/s -> 7 replicas) is still above max, so it is not lifted.
    for t in range(1, 60):
        verdict = gov.decide(step(t, waiting=10, arrival_rate=36, refused_rate=30))
        assert verdict.rate_per_s is not None


def test_lifted_only_after_holding_low_water_and_within_max() -> None:
    gov = ThrottleGovernor(SETTINGS)
    gov.decide(step(0, waiting=500, arrival_rate=60))
    low = {"waiting": 100, "arrival_rate": 20}  # 100 / 40 per s = 2.5 s <= 5 s low water
    assert gov.decide(step(1, **low)).rate_per_s is not None
    assert gov.decide(step(15, **low)).rate_per_s is not None
    # A relapse restarts the hold.
    assert gov.decide(step(16, waiting=400, arrival_rate=20)).rate_per_s is not None
    assert gov.decide(step(17, **low)).rate_per_s is not None
    assert gov.decide(step(36, **low)).rate_per_s is not None
    lifted = gov.decide(step(37, **low))
    assert lifted.rate_per_s is None
    assert lifted.changed
    assert gov.decide(step(38, **low)).rate_per_s is None  # and stays lifted


def test_an_idle_route_at_zero_replicas_is_not_left_throttled() -> None:
    """After a surge the route scaled to zero with nothing queued; clients
    that were refused keep the offered load up. Before, the throttle stayed
    at the minimum rate ("capacity 0.0/s") until the refused rate decayed."""
    gov = ThrottleGovernor(SETTINGS)
    gov.decide(step(0, waiting=500, arrival_rate=60))
    idle = {"waiting": 0, "arrival_rate": 1, "refused_rate": 80, "desired": 0, "ready": 0}
    lifted = gov.decide(step(400, **idle))
    assert lifted.rate_per_s is None
    assert lifted.changed
    assert "nothing to protect" in lifted.detail
    # The first requests wake it: one replica asked for, none ready yet.
    waking = {"waiting": 3, "arrival_rate": 60, "refused_rate": 0, "desired": 1, "ready": 0}
    for t in (401, 410, 420):
        assert gov.decide(step(t, **waking)).rate_per_s is None


def test_a_throttle_over_replicas_coming_up_from_zero_is_rated_at_what_they_will_drain() -> None:
    gov = ThrottleGovernor(SETTINGS)
    gov.decide(step(0, waiting=500, arrival_rate=60))
    coming = gov.decide(step(1, waiting=400, arrival_rate=60, desired=4, ready=0))
    assert coming.rate_per_s == 36.0  # 4 replicas x 10/s x 0.9, not the minimum


def test_replicas_that_never_start_from_zero_are_still_exhaustion() -> None:
    gov = ThrottleGovernor(SETTINGS)
    stuck = {"waiting": 50, "arrival_rate": 5, "desired": 1, "ready": 0, "service_rate": None}
    assert gov.decide(step(0, **stuck)).rate_per_s is None  # coming up: not exhaustion
    verdict = gov.decide(step(30, **stuck))
    assert verdict.reason == "replicas_not_ready"
    assert verdict.rate_per_s == 2.0  # nothing drains: the minimum
    # Starved with nothing queued: still throttled (the pods cannot start).
    assert gov.decide(step(31, **{**stuck, "waiting": 0})).rate_per_s == 2.0
