"""The status page's 15 minutes, kept by the gateway: what a sample holds,
what leaves the window, and what ``since`` hands out."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.status_history import COLUMNS, WINDOW_S, Sample, StatusHistory
from tidegate.ledger.backlog import Backlog
from tidegate.ledger.route_status import RouteStatus
from tidegate.scaler_view import ScalerView
from tidegate.throttle import Throttle


def backlog(waiting: int, pending: int = 0) -> Backlog:
    return Backlog("r", waiting, pending, waiting + pending, True, "lag")


def view(**changes: Any) -> ScalerView:
    values: dict[str, Any] = {
        "waiting": 3,
        "pending": 0,
        "oldest_waiting_age_s": 1.0,
        "arrival_rate": 12.34567,
        "drain_rate": 4.0,
        "service_rate": 2.0,
        "desired_replicas": 4,
        "needed_replicas": 6,
        "current_replicas": 2,
        "ready_replicas": 2,
        "max_replicas": 4,
        "exhausted": True,
        "reason": "surge",
        "target": "deployment shop/reports",
        "throttle": None,
        "refused_rate": 1.5,
        "updated_at_s": 0.0,
    }
    values.update(changes)
    return ScalerView(**values)


def queued(waiting: int, **parts: Any) -> RouteStatus:
    return RouteStatus("async", backlog=backlog(waiting), **parts)


def test_a_sample_holds_the_scalers_figures_and_the_throttle() -> None:
    throttle = Throttle(rate_per_s=2.5, burst=5, reason="exhausted", detail="", since_s=0)
    sample = Sample.of(100.0, queued(7, scaler=view(), throttle=throttle))
    assert sample == Sample(
        t_s=100.0,
        backlog=7,
        pending=0,
        in_per_s=12.346,
        out_per_s=4.0,
        refused_per_s=1.5,
        desired_replicas=4,
        ready_replicas=2,
        max_replicas=4,
        exhausted=True,
        throttle_per_s=2.5,
    )


def test_figures_nobody_published_are_none_not_zero() -> None:
    sample = Sample.of(100.0, queued(7))
    assert sample is not None
    assert sample.backlog == 7
    unknown = [c for c in COLUMNS if c not in ("t_s", "backlog", "pending")]
    assert {c: getattr(sample, c) for c in unknown} == dict.fromkeys(unknown)


def test_a_proxy_route_has_no_history() -> None:
    history = StatusHistory(interval_s=5)
    history.record(100.0, {"reads": RouteStatus("proxy", upstream="http://svc")})
    assert history.as_dict(100.0)["routes"] == {}


def test_the_window_keeps_fifteen_minutes_and_no_more() -> None:
    history = StatusHistory(interval_s=5)
    for n in range(400):  # 2000 s of samples, one every 5 s
        history.record(1000.0 + 5 * n, {"r": queued(n)})
    now_s = 1000.0 + 5 * 399
    kept = history.samples("r")
    assert kept[-1].backlog == 399
    assert now_s - kept[0].t_s <= WINDOW_S
    assert len(kept) == int(WINDOW_S / 5) + 1
    # Nothing recorded for a while (Redis down): the window still moves on.
    assert history.as_dict(now_s + WINDOW_S + 1)["routes"]["r"]["t_s"] == []


def test_history_is_columns_and_since_hands_out_only_newer_samples() -> None:
    history = StatusHistory(interval_s=2)
    for n in range(5):
        history.record(100.0 + 2 * n, {"r": queued(n, scaler=view(desired_replicas=n))})
    whole = history.as_dict(110.0)
    assert (whole["interval_s"], whole["window_s"], whole["now_s"]) == (2, WINDOW_S, 110.0)
    columns = whole["routes"]["r"]
    assert set(columns) == set(COLUMNS)
    assert columns["t_s"] == [100.0, 102.0, 104.0, 106.0, 108.0]
    assert columns["backlog"] == [0, 1, 2, 3, 4]
    assert columns["desired_replicas"] == [0, 1, 2, 3, 4]
    newer = history.as_dict(110.0, since_s=104.0)["routes"]["r"]
    assert newer["t_s"] == [106.0, 108.0]
    assert newer["backlog"] == [3, 4]
    assert history.as_dict(110.0, since_s=108.0)["routes"]["r"]["t_s"] == []


@pytest.mark.parametrize("interval_s", [0, -1, float("nan")])
def test_the_interval_must_be_positive(interval_s: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        StatusHistory(interval_s=interval_s)
