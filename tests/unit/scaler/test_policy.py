"""The scaling policy with fake time: a sequence of samples, decisions checked."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from scaler.policy import Policy, PolicySettings, Sample
from tidegate.settings import ScalerSettings, TargetSettings


@dataclass
class Route:
    """A toy route the tests drive: counters advance as the test says."""

    t_s: float = 0.0
    added: int = 0
    completed: int = 0
    replicas: int = 0

    def tick(
        self, policy: Policy, *, arrivals: int, done: int, waiting: int | None, pending: int = 0
    ) -> int:
        self.t_s += 1.0
        self.added += arrivals
        self.completed += done
        decision = policy.decide(
            Sample(
                t_s=self.t_s,
                waiting=waiting,
                pending=pending,
                added_total=self.added,
                completed_total=self.completed,
                ready_replicas=self.replicas,
                current_replicas=self.replicas,
            )
        )
        self.replicas = decision.replicas
        return decision.replicas


def test_lag_per_replica_before_the_service_rate_is_known() -> None:
    policy = Policy(PolicySettings(lag_per_replica=100, max_replicas=20))
    route = Route()
    assert route.tick(policy, arrivals=450, done=0, waiting=450) == 5


def test_sizes_by_littles_law_once_the_service_rate_is_learned() -> None:
    # The arithmetic alone: no noise band, no start-up projection.
    policy = Policy(
        PolicySettings(drain_target_s=30, smoothing=1.0, max_replicas=20, noise_z=0, startup_s=0)
    )
    # Saturated: 2 ready replicas finish 10/s each while 30/s arrive and 300 wait.
    policy.decide(Sample(0.0, 300, 0, 0, 0, ready_replicas=2, current_replicas=2))
    decision = policy.decide(Sample(1.0, 300, 0, 30, 20, ready_replicas=2, current_replicas=2))
    assert decision.service_rate == 10.0
    assert decision.arrival_rate == 30.0
    assert decision.needed == 4  # ceil((30 + 300 / 30) / 10)
    assert decision.replicas == 4
    assert decision.reason == "up: sized by rates, draining 300 waiting"  # 3 for arrivals


def test_idle_throughput_teaches_nothing() -> None:
    policy = Policy(PolicySettings(smoothing=1.0))
    route = Route(replicas=3)
    for _ in range(5):
        route.tick(policy, arrivals=5, done=5, waiting=0)
    decision = policy.decide(Sample(route.t_s + 1, 0, 0, route.added, route.completed, 3, 3))
    assert decision.service_rate is None


def test_up_at_once_down_only_after_the_window_then_to_zero() -> None:
    policy = Policy(
        PolicySettings(
            scale_down_window_s=10, lag_per_replica=100, max_replicas=20, scale_down_step_s=0
        )
    )
    route = Route()
    assert route.tick(policy, arrivals=800, done=0, waiting=800) == 8
    history = [route.tick(policy, arrivals=0, done=0, waiting=0) for _ in range(15)]
    assert history[:9] == [8] * 9  # held: the window still remembers 8
    assert history[-1] == 0  # idle past the window: scaled to zero
    assert route.tick(policy, arrivals=1, done=0, waiting=1) == 1  # activation at once


def test_tolerance_band_keeps_small_reductions_away() -> None:
    policy = Policy(
        PolicySettings(
            scale_down_window_s=0,
            tolerance=0.1,
            lag_per_replica=10,
            max_replicas=50,
            scale_down_step_s=0,
        )
    )
    route = Route()
    assert route.tick(policy, arrivals=200, done=0, waiting=200) == 20
    assert route.tick(policy, arrivals=0, done=0, waiting=190) == 20  # 19 is within 10%
    assert route.tick(policy, arrivals=0, done=0, waiting=100) == 10


def test_clamped_and_exhausted_above_max() -> None:
    policy = Policy(PolicySettings(min_replicas=1, max_replicas=4, lag_per_replica=100))
    decision = policy.decide(Sample(1.0, 1000, 0, 1000, 0, 0, 0))
    assert (decision.replicas, decision.needed, decision.exhausted) == (4, 10, True)
    quiet = Policy(PolicySettings(min_replicas=1, max_replicas=4)).decide(
        Sample(1.0, 0, 0, 0, 0, 1, 1)
    )
    assert (quiet.replicas, quiet.exhausted) == (1, False)  # min_replicas holds


def test_unknown_backlog_holds_the_current_replicas() -> None:
    policy = Policy(PolicySettings(lag_per_replica=100))
    route = Route()
    assert route.tick(policy, arrivals=500, done=0, waiting=500) == 5
    for _ in range(100):  # measuring fails for a long time: never scale to zero
        assert route.tick(policy, arrivals=0, done=0, waiting=None) == 5


def test_idle_after_learning_reaches_zero_and_activation_threshold_holds_it() -> None:
    policy = Policy(
        PolicySettings(
            scale_down_window_s=5,
            smoothing=0.3,
            activation_backlog=10,
            max_replicas=9,
            scale_down_step_s=0,
        )
    )
    route = Route(replicas=2)
    for _ in range(5):  # saturated: the service rate is learned, arrivals are steady
        route.tick(policy, arrivals=20, done=20, waiting=50)
    history = [route.tick(policy, arrivals=0, done=0, waiting=0) for _ in range(10)]
    assert history[-1] == 0  # the decaying arrival rate does not keep a replica
    assert route.tick(policy, arrivals=5, done=0, waiting=5) == 0  # below the threshold
    assert route.tick(policy, arrivals=6, done=0, waiting=11) >= 1  # above it


def test_replicas_added_to_drain_a_backlog_go_once_it_is_drained() -> None:
    policy = Policy(
        PolicySettings(
            scale_down_window_s=60,
            drain_target_s=10,
            smoothing=1.0,
            noise_z=0,
            startup_s=0,
            scale_down_step_s=0,
        )
    )
    route = Route(replicas=2)
    for _ in range(3):  # saturated with a small backlog: the service rate is learned
        route.tick(policy, arrivals=20, done=20, waiting=10)
    assert route.tick(policy, arrivals=20, done=30, waiting=400) == 6  # (20 + 400/10) / 10
    # Drained: the arrivals need far fewer; the window remembers what they
    # needed, not the 6 added for the backlog.
    assert route.tick(policy, arrivals=20, done=60, waiting=0) <= 2


def test_a_surge_is_sized_on_the_interval_it_shows() -> None:
    policy = Policy(PolicySettings(drain_target_s=30, smoothing=0.1, max_replicas=50))
    route = Route(replicas=2)
    for _ in range(3):
        route.tick(policy, arrivals=20, done=20, waiting=10)  # 10/s per replica learned
    assert route.tick(policy, arrivals=200, done=20, waiting=10) >= 15  # smoothed alone: 4


def test_small_increases_within_the_tolerance_are_not_made() -> None:
    policy = Policy(PolicySettings(tolerance=0.1, lag_per_replica=10, max_replicas=50))
    route = Route(replicas=20)
    assert route.tick(policy, arrivals=0, done=0, waiting=210) == 20  # 21 is within 10%
    assert route.tick(policy, arrivals=0, done=0, waiting=230) == 23  # 23 is not


def test_a_surge_beyond_the_noise_is_answered_in_the_interval_it_shows() -> None:
    policy = Policy(PolicySettings(max_replicas=50, scale_down_step_s=0))
    route = Route(replicas=12)
    for _ in range(30):  # 60/s steady, 5/s per replica, a small queue now and then
        route.tick(policy, arrivals=60, done=60, waiting=5)
    settled = route.replicas
    assert route.tick(policy, arrivals=62, done=60, waiting=6) == settled  # within noise
    assert route.tick(policy, arrivals=150, done=60, waiting=90) >= 30  # (150 + 90/30) / 5


def test_the_start_up_time_is_learned_from_ready_transitions() -> None:
    policy = Policy(PolicySettings(lag_per_replica=10, smoothing=1.0, max_replicas=20))
    assert policy.startup_s == 10.0  # the setting, until one is measured
    policy.decide(Sample(0.0, 0, 0, 0, 0, ready_replicas=1, current_replicas=1))
    policy.decide(Sample(1.0, 40, 0, 40, 0, ready_replicas=1, current_replicas=4))
    for t in range(2, 14):
        policy.decide(Sample(float(t), 40, 0, 40, 0, ready_replicas=1, current_replicas=4))
    policy.decide(Sample(14.0, 40, 0, 40, 0, ready_replicas=4, current_replicas=4))
    assert policy.startup_s == 13.0  # asked at 1 s, ready at 14 s


def test_a_surge_is_sized_for_what_will_wait_when_new_replicas_are_ready() -> None:
    """While pods start, the shortfall keeps queueing: asked for now, the
    replicas must also drain what piles up until they are ready."""

    def surge(startup_s: float) -> int:
        policy = Policy(
            PolicySettings(smoothing=1.0, noise_z=0, startup_s=startup_s, max_replicas=100)
        )
        for t, added in ((0, 0), (1, 20), (2, 40)):  # 2 replicas, 10/s each, saturated
            policy.decide(Sample(float(t), 10, 0, added, added, 2, 2))
        return policy.decide(Sample(3.0, 10, 0, 140, 60, 2, 2)).replicas  # 100/s arrive

    assert surge(0.0) == 11  # ceil((100 + 10/30) / 10)
    assert surge(20.0) == 16  # + (100 - 2 x 10) x 20 s more to drain in 30 s


def test_scale_in_removes_idle_replicas_only() -> None:
    policy = Policy(PolicySettings(lag_per_replica=10, scale_down_window_s=0, scale_down_step_s=0))
    policy.decide(Sample(0.0, 80, 0, 80, 0, ready_replicas=8, current_replicas=8))
    decision = policy.decide(
        Sample(1.0, 0, 6, 80, 74, ready_replicas=8, current_replicas=8, busy_replicas=6)
    )
    assert decision.replicas == 6  # the need is 1; six replicas are still working
    decision = policy.decide(
        Sample(2.0, 0, 0, 80, 80, ready_replicas=8, current_replicas=6, busy_replicas=0)
    )
    assert decision.replicas == 0


def test_a_decaying_need_is_followed_in_few_writes() -> None:
    """After a change, no scale-down for scale_down_step_s; then one write
    goes all the way to what the window allows."""
    policy = Policy(
        PolicySettings(
            lag_per_replica=10, scale_down_window_s=0, scale_down_step_s=30, max_replicas=50
        )
    )
    route = Route()
    assert route.tick(policy, arrivals=200, done=0, waiting=200) == 20
    seen = [route.tick(policy, arrivals=0, done=0, waiting=max(0, 190 - 10 * n)) for n in range(40)]
    writes = [b for a, b in zip([20, *seen], seen, strict=False) if a != b]
    assert seen[:28] == [20] * 28  # held within 30 s of the scale-up
    assert writes == [0]  # then straight to what is needed (nothing waits by then)


def test_route_loops_spread_their_steps_over_the_interval() -> None:
    from scaler.phases import phase_s

    phases = sorted(phase_s(f"svc-{n}", 1.0) for n in range(1000))
    assert all(0.0 <= p < 1.0 for p in phases)
    assert phase_s("svc-7", 1.0) == phase_s("svc-7", 1.0)  # a route keeps its phase
    assert phase_s("svc-7", 2.0) == 2 * phase_s("svc-7", 1.0)
    # Spread: each tenth of the interval holds about a tenth of the routes.
    per_tenth = [sum(1 for p in phases if k / 10 <= p < (k + 1) / 10) for k in range(10)]
    assert min(per_tenth) >= 70
    assert max(per_tenth) <= 130


def test_a_batch_worker_is_learned_at_its_mean_rate_whatever_its_batch_period() -> None:
    """A batch handler finishes N jobs at once, every batch period: sampled
    each second, most intervals of a slow batch see no completion at all.
    The service rate learned is the mean (N / period), not N per completing
    interval (which would size the route for a fraction of the replicas it needs)."""
    for period_s in (1, 2, 3, 5):
        policy = Policy(PolicySettings(max_replicas=100, noise_z=0, startup_s=0))
        route = Route(replicas=2)
        for second in range(1, 120):
            done = 2 * 64 if second % period_s == 0 else 0  # 2 replicas, batches of 64
            route.tick(policy, arrivals=200, done=done, waiting=5000)
            route.replicas = 2
        decision = policy.decide(Sample(route.t_s + 1, 5000, 0, route.added, route.completed, 2, 2))
        assert decision.service_rate is not None
        assert abs(decision.service_rate - 64 / period_s) < 0.1 * 64 / period_s, period_s


def test_a_stall_longer_than_a_batch_teaches_nothing() -> None:
    """Saturated and no completion for a minute (the work stalled, a
    downstream outage): the rate learned before stands when work resumes."""
    policy = Policy(PolicySettings(max_replicas=100, noise_z=0, startup_s=0))
    route = Route(replicas=2)
    for _ in range(60):
        route.tick(policy, arrivals=20, done=20, waiting=500)
        route.replicas = 2
    for _ in range(60):
        route.tick(policy, arrivals=20, done=0, waiting=500)
        route.replicas = 2
    route.tick(policy, arrivals=20, done=20, waiting=500)
    decision = policy.decide(Sample(route.t_s + 1, 500, 0, route.added, route.completed + 20, 2, 2))
    assert decision.service_rate is not None
    assert abs(decision.service_rate - 10) < 0.5


def test_route_loops_of_a_slot_wake_together_on_the_interval_grid() -> None:
    """Steps are due at phase + k x interval, whenever the last one ended: the
    routes of one slot wake at the same instant (and share a round trip)."""
    from scaler.phases import next_tick, phase_s

    assert next_tick(5.3, 0.2, 1.0) == pytest.approx(6.2)
    assert next_tick(6.2, 0.2, 1.0) == pytest.approx(7.2)  # strictly after
    assert next_tick(0.0, 0.0, 2.0) == pytest.approx(2.0)
    assert next_tick(5.9, 0.2, 1.0) == pytest.approx(6.2)  # a long step: the next slot, not +1
    same_slot = [
        r for r in (f"svc-{n}" for n in range(100)) if phase_s(r, 1.0) == phase_s("svc-0", 1.0)
    ]
    assert len(same_slot) > 1
    # ended at different moments, due at the same one
    wakes = {next_tick(5.0 + 0.01 * i, phase_s(r, 1.0), 1.0) for i, r in enumerate(same_slot)}
    assert len(wakes) == 1


def test_the_policy_s_defaults_are_the_configured_ones() -> None:
    """Declared once: the policy's operator-facing defaults are read from
    ``ScalerSettings``, so changing a default there changes the policy."""
    configured = ScalerSettings(target=TargetSettings(kind="local", app="svc:handle"))
    assert PolicySettings() == PolicySettings.of(configured)
    tuned = ScalerSettings(
        target=TargetSettings(kind="local", app="svc:handle"),
        min_replicas=2,
        max_replicas=7,
        drain_target_s=12.0,
        scale_down_window_s=5.0,
        tolerance=0.2,
        lag_per_replica=9,
        activation_backlog=3,
        predict="periodic",
    )
    chosen = PolicySettings.of(tuned)
    assert (chosen.min_replicas, chosen.max_replicas, chosen.lag_per_replica) == (2, 7, 9)
    assert (chosen.drain_target_s, chosen.scale_down_window_s, chosen.tolerance) == (12.0, 5.0, 0.2)
    assert (chosen.activation_backlog, chosen.predict) == (3, True)
