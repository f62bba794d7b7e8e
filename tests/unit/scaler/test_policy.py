"""The scaling policy with fake time: a sequence of samples, decisions checked."""

from __future__ import annotations

from dataclasses import dataclass

from scaler.policy import Policy, PolicySettings, Sample


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
    policy = Policy(PolicySettings(drain_target_s=30, smoothing=1.0, max_replicas=20))
    # Saturated: 2 ready replicas finish 10/s each while 30/s arrive and 300 wait.
    policy.decide(Sample(0.0, 300, 0, 0, 0, ready_replicas=2, current_replicas=2))
    decision = policy.decide(Sample(1.0, 300, 0, 30, 20, ready_replicas=2, current_replicas=2))
    assert decision.service_rate == 10.0
    assert decision.arrival_rate == 30.0
    assert decision.needed == 4  # ceil((30 + 300 / 30) / 10)
    assert decision.replicas == 4


def test_idle_throughput_teaches_nothing() -> None:
    policy = Policy(PolicySettings(smoothing=1.0))
    route = Route(replicas=3)
    for _ in range(5):
        route.tick(policy, arrivals=5, done=5, waiting=0)
    decision = policy.decide(Sample(route.t_s + 1, 0, 0, route.added, route.completed, 3, 3))
    assert decision.service_rate is None


def test_up_at_once_down_only_after_the_window_then_to_zero() -> None:
    policy = Policy(PolicySettings(scale_down_window_s=10, lag_per_replica=100, max_replicas=20))
    route = Route()
    assert route.tick(policy, arrivals=800, done=0, waiting=800) == 8
    history = [route.tick(policy, arrivals=0, done=0, waiting=0) for _ in range(15)]
    assert history[:9] == [8] * 9  # held: the window still remembers 8
    assert history[-1] == 0  # idle past the window: scaled to zero
    assert route.tick(policy, arrivals=1, done=0, waiting=1) == 1  # activation at once


def test_tolerance_band_keeps_small_reductions_away() -> None:
    policy = Policy(
        PolicySettings(scale_down_window_s=0, tolerance=0.1, lag_per_replica=10, max_replicas=50)
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
        PolicySettings(scale_down_window_s=5, smoothing=0.3, activation_backlog=10, max_replicas=9)
    )
    route = Route(replicas=2)
    for _ in range(5):  # saturated: the service rate is learned, arrivals are steady
        route.tick(policy, arrivals=20, done=20, waiting=50)
    history = [route.tick(policy, arrivals=0, done=0, waiting=0) for _ in range(10)]
    assert history[-1] == 0  # the decaying arrival rate does not keep a replica
    assert route.tick(policy, arrivals=5, done=0, waiting=5) == 0  # below the threshold
    assert route.tick(policy, arrivals=6, done=0, waiting=11) >= 1  # above it


def test_replicas_added_to_drain_a_backlog_go_once_it_is_drained() -> None:
    policy = Policy(PolicySettings(scale_down_window_s=60, drain_target_s=10, smoothing=1.0))
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
