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
  an idle worker's throughput says nothing about its capacity. A saturated
  interval without a completion is held over and counted with the next one
  that has some (up to ``QUIET_CARRY_S``): a batch handler finishes N jobs
  at once every batch period, and taking only the intervals that saw a batch
  end would learn N per interval instead of N per period. Quiet for longer
  is an outage of the work, not a batch, and teaches nothing.
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
- **Noise.** Arrivals are random: a steady load still shows a different
  count every interval. The spread of the per-interval arrival rate (as
  observed, and never below a Poisson process's) gives a band around the
  smoothed rate, ``noise_z`` standard deviations of the moving average wide.
  Replicas go up only when even the low end of the band needs more, and down
  only when even the high end needs fewer: a change chance explains moves
  nothing. A latest rate ``surge_z`` Poisson deviations above the smoothed
  one (and beyond the tolerance) is a surge, sized for at once.
- **Start-up.** Replicas asked for now are ready only after the pods start
  (learned from ready transitions: the time from a scale-up to its replicas
  being ready, smoothed; ``startup_s`` until one is seen). A scale-up is
  sized for what will wait by then (the shortfall of the ready replicas
  times the start-up time, on top of the backlog), so one write answers a
  surge instead of one per interval while the backlog grows.
- **Prediction** (opt-in, ``predict``): ``scaler.predict`` learns a
  repeating arrival pattern; while it holds, the arrivals sized for are at
  least what the last period saw over the coming start-up time, so replicas
  are ready when a repeating burst comes. When the pattern breaks the policy
  is reactive alone.
- **Stability.** Up at once; down only to the highest recommendation of the
  last ``scale_down_window_s``, at most once per ``scale_down_step_s``
  (default half the window) and not that soon after any change, so a
  decaying need is followed in a few writes; neither way within the
  tolerance band (relative to the current replicas, as the HPA does). The
  window remembers the replicas the arrivals need (what may come back), not
  those added to drain a backlog: once the backlog is gone, those are
  released without waiting out the window. Scale-in keeps the replicas whose
  workers report a job in flight (``busy_replicas``): idle ones go first, and
  busy ones when they are done. Clamped to ``[min_replicas, max_replicas]``;
  a need above the maximum is reported as ``exhausted`` (the throttle's cue).
- **Unknown is not zero.** A sample whose measurement failed (``None``
  backlog) holds the current replicas.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from scaler.policy_io import Decision, PolicySettings, Sample
from scaler.predict import PeriodicPredictor
from scaler.rates import ewma, per_second, replicas_for

__all__ = ["Decision", "Policy", "PolicySettings", "Sample"]

QUIET_CARRY_S = 30.0
"""Longest run of saturated intervals without a completion that is still
counted with the next completions (a batch still forming); beyond, the work
stalled and the quiet time is dropped."""


@dataclass
class Policy:
    settings: PolicySettings
    _last: Sample | None = None
    _arrival: float = 0.0
    _latest_arrival: float = 0.0
    _completion: float = 0.0
    _service: float | None = None
    _quiet_s: float = 0.0
    """Saturated time since the last completion, carried into the next rate."""
    _history: deque[tuple[float, int]] = field(default_factory=deque)
    """The needs of the scale-down window (time, need), decreasing: the first is the highest."""
    _arrival_var: float | None = None
    _startup: float | None = None
    _starting: deque[tuple[float, int]] = field(default_factory=deque)
    """Scale-ups not yet ready: (when, replicas asked for)."""
    _changed_s: float | None = None
    """When the replicas last changed: asked for here, or seen changed by others."""
    _asked: int | None = None
    """The replicas of the last decision."""
    predictor: PeriodicPredictor | None = None
    _predicted: float | None = None

    def __post_init__(self) -> None:
        if self.settings.predict and self.predictor is None:
            self.predictor = PeriodicPredictor()

    @property
    def startup_s(self) -> float:
        """The pods' start-up time: measured, else the setting."""
        return self._startup if self._startup is not None else self.settings.startup_s

    def _learn_startup(self, last: Sample | None, sample: Sample) -> None:
        """Time from a scale-up to its replicas being ready, smoothed."""
        if last is not None and sample.current_replicas > last.current_replicas:
            self._starting.append((sample.t_s, sample.current_replicas))
        while self._starting and sample.ready_replicas >= self._starting[0][1]:
            asked_s, _ = self._starting.popleft()
            self._startup = self._smooth(self._startup, sample.t_s - asked_s)
        if self._starting and sample.current_replicas < self._starting[-1][1]:
            self._starting.clear()  # scaled in before they were ready: nothing to learn

    def _smooth(self, old: float | None, new: float) -> float:
        return ewma(old, new, self.settings.smoothing)

    def decide(self, sample: Sample) -> Decision:
        s = self.settings
        last, self._last = self._last, sample
        if sample.waiting is None:
            current = sample.current_replicas
            return self._decision(current, current, "hold: backlog unknown")
        self._learn_startup(last, sample)
        self._predicted = None
        changed = last is not None and sample.current_replicas != last.current_replicas
        if changed and sample.current_replicas != self._asked:
            self._changed_s = sample.t_s  # changed by someone else (an operator, a rollout)
        arrived = last is not None and sample.added_total > last.added_total
        interval_s = 1.0
        if last is not None and sample.t_s > last.t_s:
            t_s = sample.t_s
            interval_s = t_s - last.t_s
            arrivals = per_second((last.t_s, last.added_total), t_s, sample.added_total) or 0.0
            done = sample.completed_total
            completions = per_second((last.t_s, last.completed_total), t_s, done) or 0.0
            if self._arrival_var is None:  # the first rate: no spread around it yet
                self._arrival, self._arrival_var = arrivals, 0.0
            else:
                deviation = (arrivals - self._arrival) ** 2
                self._arrival_var = self._smooth(self._arrival_var, deviation)
                self._arrival = self._smooth(self._arrival, arrivals)
            self._latest_arrival = arrivals
            if self.predictor is not None:
                self.predictor.observe(t_s, arrivals)
            self._completion = self._smooth(self._completion, completions)
            saturated = (last.waiting or 0) > 0 and last.ready_replicas > 0
            if saturated and completions > 0:
                done_n = completions * interval_s
                carried_s = self._quiet_s if self._quiet_s <= QUIET_CARRY_S else 0.0
                span_s = interval_s + carried_s
                self._service = self._smooth(self._service, done_n / span_s / last.ready_replicas)
                self._quiet_s = 0.0
            elif saturated:
                self._quiet_s += interval_s
            else:
                self._quiet_s = 0.0

        backlog = sample.waiting + sample.pending
        if self._service:
            # The noise band: the spread of the per-interval arrival rate
            # (observed, and never below what Poisson arrivals give), as the
            # spread of its moving average. Within it, a change is chance.
            poisson = max(self._arrival, 1.0) / interval_s
            spread = max(self._arrival_var or 0.0, poisson)
            weight = s.smoothing / (2 - s.smoothing)
            band = s.noise_z * math.sqrt(spread * weight)
            # A surge: beyond what Poisson arrivals at the smoothed rate would
            # show in one interval (the observed spread grows with every
            # surge; judged by it, the next surge would pass unseen).
            surge = self._latest_arrival > max(
                self._arrival + s.surge_z * math.sqrt(poisson),
                self._arrival * (1 + s.tolerance),
            )
            arrival = self._latest_arrival if surge else self._arrival
            predicted = self.predictor.predict(self.startup_s) if self.predictor else None
            self._predicted = predicted
            ahead_of_pattern = predicted is not None and predicted > arrival
            if ahead_of_pattern:
                assert predicted is not None
                arrival = predicted
            # What will wait by the time replicas asked for now are ready.
            short = max(0.0, arrival - sample.ready_replicas * self._service)
            ahead = sample.waiting + short * self.startup_s
            mu, target_s = self._service, s.drain_target_s
            needed = replicas_for(arrival, sample.waiting, target_s, mu)
            high = replicas_for(arrival + band, ahead, target_s, mu)
            low = replicas_for(max(0.0, arrival - band), sample.waiting, target_s, mu)
            how = "sized by rates" + (" (surge)" if surge else "")
            if ahead_of_pattern:
                how = f"sized by prediction ({arrival:.1f}/s within {self.startup_s:.0f} s)"
            if needed > replicas_for(arrival, 0, target_s, mu):
                how += f", draining {sample.waiting} waiting"
            steady = replicas_for(self._arrival + band, 0, target_s, mu)
        else:
            needed, how = math.ceil(backlog / s.lag_per_replica), "sized by lag per replica"
            high = low = steady = needed
        activate = backlog > s.activation_backlog or (arrived and s.activation_backlog == 0)
        if sample.current_replicas == 0 and not activate:
            needed = high = low = 0  # at zero, below the activation threshold
        elif backlog > 0 or arrived:
            needed, high, low = max(needed, 1), max(high, 1), max(low, 1)
        else:
            needed = high = low = 0  # idle this interval

        # The window's needs, kept as a monotonic queue: a need is dropped
        # once a later one is at least as high, so the first is the highest.
        need = min(high, steady)
        while self._history and self._history[-1][1] <= need:
            self._history.pop()
        self._history.append((sample.t_s, need))
        while self._history[0][0] < sample.t_s - s.scale_down_window_s:
            self._history.popleft()
        current = sample.current_replicas
        if low > current and not (current and (low - current) / current <= s.tolerance):
            # More than chance explains: size for what will wait when the new
            # replicas are ready, so one write answers the surge.
            target, why = max(needed, high), f"up: {how}"
        elif high < current:
            highest = self._history[0][1]
            target = min(current, max(high, highest))  # this branch never adds
            if target < current and current and (current - target) / current <= s.tolerance:
                target = current
            wanted = target
            busy = sample.busy_replicas
            if busy is not None and target < current:
                target = max(target, min(current, busy))  # idle replicas only
            step_s = s.scale_down_step_s
            if step_s is None:
                step_s = s.scale_down_window_s / 2
            recent = self._changed_s is not None and sample.t_s - self._changed_s < step_s
            if target < current and recent:
                target, why = current, "hold: changed recently"
            elif target > wanted:
                why = (
                    f"down: idle replicas only ({busy} busy)"
                    if target < current
                    else f"hold: every replica busy ({busy})"
                )
            else:
                why = "down: " + how if target < current else "hold: scale-down window"
        else:
            target, why = current, f"steady: {how} (within noise)"
        clamped = min(max(target, s.min_replicas), s.max_replicas)
        if clamped != current:
            self._changed_s = sample.t_s
        self._asked = clamped
        return self._decision(clamped, max(needed, low), why)

    def _decision(self, replicas: int, needed: int, reason: str) -> Decision:
        return Decision(
            replicas=replicas,
            needed=needed,
            exhausted=needed > self.settings.max_replicas,
            arrival_rate=self._arrival,
            completion_rate=self._completion,
            service_rate=self._service,
            reason=reason,
            predicted_rate=self._predicted,
        )
