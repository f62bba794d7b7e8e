"""The simulator and its KEDA + HPA emulation (deterministic: no timing involved)."""

from __future__ import annotations

from scaler.sim import TRACES, KedaHpa, Tidegate, Trace, simulate


def test_hpa_scale_up_is_limited_per_period_and_keda_polls_every_30_s() -> None:
    keda = KedaHpa(lag_count=10)
    desired, seen = 0, []
    for t in range(0, 61):
        want = keda.decide(float(t), 10_000, 0, 0, desired, desired)
        if want is not None:
            desired = want
            seen.append((t, want))
    # Activation at the first poll; then at most max(4, 100%) more per 15 s sync.
    assert seen == [(0, 1), (15, 5), (30, 10), (45, 20), (60, 40)]


def test_hpa_sees_the_lag_of_the_last_poll_not_the_live_one() -> None:
    keda = KedaHpa(lag_count=10)
    assert keda.decide(0.0, 20, 0, 0, 0, 0) == 1  # poll: lag 20, activate
    assert keda.decide(15.0, 10_000, 0, 0, 1, 1) == 2  # sync: still the polled 20
    assert keda.decide(30.0, 10_000, 0, 0, 2, 2) == 6  # polled again: 2 + max(4, 2)


def test_hpa_scale_down_waits_for_its_300_s_stabilization() -> None:
    keda = KedaHpa(lag_count=10)
    desired = 8
    keda.decide(0.0, 80, 0, 0, desired, desired)  # recommendation 8 recorded
    changes = []
    for t in range(1, 400):
        want = keda.decide(float(t), 0, 0, 0, desired, desired)
        if want is not None and want != desired:
            desired = want
            changes.append((t, want))
    assert changes
    assert changes[0][0] >= 300  # nothing before the 300 s window and cooldown


def test_every_job_is_served_and_counted() -> None:
    trace = Trace("flat", 120, lambda t: 20.0, "20/s")
    for controller in (KedaHpa(300), Tidegate()):
        result = simulate(trace, controller)
        assert result.jobs == 2400
        assert result.served == 2400  # every job's wait counted


def test_tidegate_waits_less_than_keda_on_a_step() -> None:
    step = next(t for t in TRACES if t.name == "step")
    ours, theirs = simulate(step, Tidegate()), simulate(step, KedaHpa(300))
    assert ours.p99_wait_s < theirs.p99_wait_s
    assert ours.peak_backlog < theirs.peak_backlog
