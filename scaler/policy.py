"""The scaling policy: a pure function of samples and time.

Per route, every ``interval_s`` the scaler feeds one ``Sample`` (counters and
gauges read from Redis and the Deployment) into ``Policy.decide``, which
returns how many replicas the route's workers should have. Nothing here does
I/O or reads a clock: time comes in with the sample, so tests drive it with
fake time.

How the number is found:

- **Rates.** The arrival rate (entries added) and the completion rate
  (entries finished) are differences of counters over time, smoothed. Sizing
  uses the larger of the smoothed and the latest arrival rate: a surge is
  answered in the interval it shows, a lull only slowly.
- **Service rate per replica.** Learned only while the workers are
  saturated (work was waiting for them), as completions per ready replica;
  an idle worker's throughput says nothing about its capacity.
- **Sizing (Little's law).** With a known service rate ``mu`` per replica,
  the replicas needed to keep up with arrivals ``lambda`` and drain the
  backlog ``B`` within ``drain_target_s`` are ``ceil((lambda + B /
  drain_target_s) / mu)``. Before ``mu`` is known, a lag-per-replica target
  stands in (as KEDA's lagCount does).
- **Activation** (0 <-> 1) is separate from sizing: at zero replicas, a
  backlog above ``activation_backlog`` (default 0: any entry, or an arrival
  in the last interval) asks for one replica at once; while running, any
  work keeps at least one. An interval with no work and no arrival asks for
  none (a smoothed rate decays but never reaches zero, so it is not what
  decides idleness); zero replicas follow once the scale-down window has
  passed.
- **Stability.** Up at once; down only to the highest recommendation of the
  last ``scale_down_window_s``; neither way for a change within the
  tolerance band (relative to the current replicas, as the HPA does). The
  window remembers the replicas the arrivals need (what may come back), not
  those added to drain a backlog: once the backlog is gone, those are
  released without waiting out the window. Clamped to
  ``[min_replicas, max_replicas]``; a need above the maximum is reported as
  ``exhausted`` (the throttle's cue).
- **Unknown is not zero.** A sample whose measurement failed (``None``
  backlog) holds the current replicas.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from scaler.rates import ewma, per_second, replicas_for


@dataclass(frozen=True)
class PolicySettings:
    min_replicas: int = 0
    max_replicas: int = 10
    drain_target_s: float = 30.0
    scale_down_window_s: float = 60.0
    tolerance: float = 0.1
    """Relative change below which replicas are not reduced (against flapping)."""
    lag_per_replica: int = 100
    """Backlog per replica used before the service rate is known."""
    smoothing: float = 0.3
    """Weight of the newest value in the moving averages (0 < x <= 1)."""
    activation_backlog: int = 0
    """Backlog above which a route at zero gets its first replica."""


@dataclass(frozen=True)
class Sample:
    """One observation of a route, taken at ``t_s`` (seconds, any fixed origin)."""

    t_s: float
    waiting: int | None
    """Entries not yet delivered (None: the measurement failed)."""
    pending: int
    """Entries delivered and not yet acknowledged."""
    added_total: int
    """Entries ever added to the stream (a counter)."""
    completed_total: int
    """Entries ever finished (a counter)."""
    ready_replicas: int
    current_replicas: int
    oldest_age_s: float | None = None
    """How long the oldest waiting entry has waited (None: nothing waits)."""
    refused_total: int = 0
    """Requests ever refused by the route's throttle or quotas (a counter)."""


@dataclass(frozen=True)
class Decision:
    replicas: int
    needed: int
    """Before clamping: what the backlog and rates ask for."""
    exhausted: bool
    """More replicas are needed than max_replicas allows."""
    arrival_rate: float
    completion_rate: float
    service_rate: float | None
    """Learned completions per second per replica (None: not yet known)."""
    reason: str


@dataclass
class Policy:
    settings: PolicySettings
    _last: Sample | None = None
    _arrival: float = 0.0
    _latest_arrival: float = 0.0
    _completion: float = 0.0
    _service: float | None = None
    _history: deque[tuple[float, int]] = field(default_factory=deque)

    def _smooth(self, old: float | None, new: float) -> float:
        return ewma(old, new, self.settings.smoothing)

    def decide(self, sample: Sample) -> Decision:
        s = self.settings
        last, self._last = self._last, sample
        if sample.waiting is None:
            current = sample.current_replicas
            return self._decision(current, current, "hold: backlog unknown")
        arrived = last is not None and sample.added_total > last.added_total
        if last is not None and sample.t_s > last.t_s:
            t_s = sample.t_s
            arrivals = per_second((last.t_s, last.added_total), t_s, sample.added_total) or 0.0
            done = sample.completed_total
            completions = per_second((last.t_s, last.completed_total), t_s, done) or 0.0
            self._arrival = self._smooth(self._arrival, arrivals)
            self._latest_arrival = arrivals
            self._completion = self._smooth(self._completion, completions)
            saturated = (last.waiting or 0) > 0 and last.ready_replicas > 0
            if saturated and completions > 0:
                per_replica = completions / last.ready_replicas
                self._service = self._smooth(self._service, per_replica)

        backlog = sample.waiting + sample.pending
        if self._service:
            arrival = max(self._arrival, self._latest_arrival)  # rises at once, decays slowly
            needed = replicas_for(arrival, sample.waiting, s.drain_target_s, self._service)
            how = "sized by rates"
            steady = replicas_for(self._arrival, 0, s.drain_target_s, self._service)
        else:
            needed, how = math.ceil(backlog / s.lag_per_replica), "sized by lag per replica"
            steady = needed
        activate = backlog > s.activation_backlog or (arrived and s.activation_backlog == 0)
        if sample.current_replicas == 0 and not activate:
            needed = 0  # at zero, below the activation threshold
        elif backlog > 0 or arrived:
            needed = max(needed, 1)  # work asks for one at once
        else:
            needed = 0  # idle this interval

        self._history.append((sample.t_s, min(needed, steady)))
        while self._history and self._history[0][0] < sample.t_s - s.scale_down_window_s:
            self._history.popleft()
        current = sample.current_replicas
        if needed >= current:
            target, why = needed, f"up: {how}" if needed > current else f"steady: {how}"
            if current and needed > current and (needed - current) / current <= s.tolerance:
                target, why = current, f"steady: {how} (within tolerance)"
        else:
            highest = max(n for _, n in self._history)
            target = max(needed, highest)
            if target < current and current and (current - target) / current <= s.tolerance:
                target = current
            why = "down: " + how if target < current else "hold: scale-down window"
        clamped = min(max(target, s.min_replicas), s.max_replicas)
        return self._decision(clamped, needed, why)

    def _decision(self, replicas: int, needed: int, reason: str) -> Decision:
        return Decision(
            replicas=replicas,
            needed=needed,
            exhausted=needed > self.settings.max_replicas,
            arrival_rate=self._arrival,
            completion_rate=self._completion,
            service_rate=self._service,
            reason=reason,
        )
