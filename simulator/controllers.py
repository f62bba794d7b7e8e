"""The controllers the simulator compares, each deciding from what it sees.

- ``Tidegate``: ``scaler.policy.Policy`` with its defaults, sampled every
  second, as the real scaler runs it (graceful scale-in: idle pods first).
- ``KedaHpa``: KEDA's Redis Streams ``lagCount`` scaler polled every 30 s
  feeding an HPA with the Kubernetes defaults (see the package docstring).
"""

from __future__ import annotations

import math
from collections import deque

from scaler.policy import Policy, PolicySettings, Sample
from simulator.constants import DRAIN_TARGET_S, MAX_REPLICAS
from simulator.world import Seen


class Tidegate:
    name = "tidegate"
    graceful = True

    def __init__(self, phase_s: float = 0.0, predict: bool = False) -> None:
        self.policy = Policy(
            PolicySettings(
                max_replicas=MAX_REPLICAS, drain_target_s=DRAIN_TARGET_S, predict=predict
            )
        )
        self.next_s = phase_s % 1.0

    def decide(self, seen: Seen) -> int | None:
        if seen.t < self.next_s:
            return None
        self.next_s = seen.t + 1.0
        sample = Sample(
            seen.t,
            seen.waiting,
            seen.pending,
            seen.added,
            seen.completed,
            seen.ready,
            seen.desired,
            busy_replicas=seen.busy,
        )
        return self.policy.decide(sample).replicas


class KedaHpa:
    name = "KEDA + HPA"
    graceful = False

    def __init__(self, lag_count: int, phase_s: float = 0.0, name: str | None = None) -> None:
        self.lag_count = lag_count
        self.name = name or self.name
        self.metric = 0
        self.next_poll_s = phase_s % 30.0
        self.next_sync_s = phase_s % 15.0
        self.last_active_s = -math.inf
        self.recommendations: deque[tuple[float, int]] = deque()

    def decide(self, seen: Seen) -> int | None:
        t, waiting, desired = seen.t, seen.waiting, seen.desired
        out: int | None = None
        if t >= self.next_poll_s:  # KEDA polls the scaler
            self.next_poll_s = t + 30.0
            self.metric = waiting
            if waiting > 0:
                self.last_active_s = t
                if desired == 0:
                    self.next_sync_s = t + 15.0  # the HPA takes over from its next sync
                    return 1  # activation
            elif desired > 0 and t - self.last_active_s >= 300.0:
                return 0  # cooldownPeriod over: deactivated
        if desired == 0 or t < self.next_sync_s:
            return out
        self.next_sync_s = t + 15.0
        # The HPA: AverageValue target, tolerance, behaviour defaults.
        ratio = self.metric / (self.lag_count * desired)
        raw = desired if abs(ratio - 1) <= 0.1 else math.ceil(self.metric / self.lag_count)
        raw = min(max(raw, 1), MAX_REPLICAS)
        self.recommendations.append((t, raw))
        while self.recommendations[0][0] < t - 300.0:
            self.recommendations.popleft()
        if raw > desired:
            target = min(raw, desired + max(4, desired))
        else:
            stabilized = max(r for _, r in self.recommendations)
            target = max(min(stabilized, desired), desired - desired)  # <= 100% per period
        return target if target != desired else out
