"""When scaling is exhausted: the throttle decision, a pure function of time.

Each control step the route loop feeds the governor what it measured and
decided; the governor says whether the route's front door should be
throttled and at what rate. No I/O, no clock: time comes in with the step.

- **Exhausted** when the policy needs more replicas than ``max_replicas``, or
  the target has had fewer ready replicas than asked for during
  ``ready_grace_s`` (pods that cannot start: unschedulable, crash-looping).
- **Engage** when exhausted *and* the backlog would not drain within
  ``drain_target_s`` at the current capacity against the offered load
  (admitted plus refused arrivals: a throttle hides demand from the admitted
  count, so the refused count is added back).
- **Rate** = measured drain capacity x (1 - ``margin``), so the backlog
  shrinks while throttled: capacity is the learned per-replica service rate
  times the ready replicas, else the measured completion rate; never below
  ``min_rate_per_s``. Recomputed every step (the capacity is re-learned);
  a change of less than ``RATE_CHANGE`` is not worth a write.
- **Lift**, with hysteresis, once for ``hold_s`` in a row the backlog drains
  within ``low_water_s`` and the replicas the offered load needs are back
  within ``max_replicas`` (and the target is not short of ready replicas).
- **Scaling from zero is not exhaustion.** While a route has no ready
  replica but those asked for are still within ``ready_grace_s``, it is not
  throttled for needing more than ``max_replicas``; a throttle already set is
  lifted at once when nothing is queued (there is nothing to protect), and
  otherwise rated at what the replicas coming up will drain, not at zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaler.rates import replicas_for
from tidegate.settings import ThrottleSettings

RATE_CHANGE = 0.05
"""Relative rate change below which a set throttle is left as it is."""


@dataclass(frozen=True)
class Step:
    t_s: float
    waiting: int
    arrival_rate: float
    """Admitted entries per second (smoothed)."""
    refused_rate: float
    """Requests refused per second (throttle and quotas)."""
    completion_rate: float
    service_rate: float | None
    needed: int
    """The policy's need (used while the service rate is unknown)."""
    desired: int
    ready: int
    max_replicas: int
    drain_target_s: float


@dataclass(frozen=True)
class Verdict:
    rate_per_s: float | None
    """The throttle rate, or None: not throttled."""
    reason: str
    detail: str
    changed: bool
    """The throttle was set, lifted, or its rate moved enough to write."""


class ThrottleGovernor:
    def __init__(self, settings: ThrottleSettings) -> None:
        self.settings = settings
        self.rate: float | None = None
        self.reason = ""
        self._short_since: float | None = None
        self._recovered_since: float | None = None

    def adopt(self, rate_per_s: float, reason: str) -> None:
        """Take over a throttle set before (by a previous leader): it is then
        re-rated and lifted by the same rules as one set here."""
        if self.rate is None:
            self.rate, self.reason = rate_per_s, reason
            self._recovered_since = None

    def _capacity(self, step: Step, activating: bool) -> float:
        if step.service_rate:
            # Replicas on their way up from zero drain at the learned rate
            # once ready: the rate is theirs, not the zero of the moment.
            replicas = min(max(step.desired, 1), step.max_replicas) if activating else step.ready
            return step.service_rate * replicas
        return step.completion_rate

    def decide(self, step: Step) -> Verdict:
        s = self.settings
        if step.ready < step.desired:
            self._short_since = step.t_s if self._short_since is None else self._short_since
        else:
            self._short_since = None
        starved = self._short_since is not None and step.t_s - self._short_since >= s.ready_grace_s
        # Scaling from zero is not exhaustion: replicas asked for and still
        # within their grace to start.
        activating = step.ready == 0 and not starved
        offered = step.arrival_rate + step.refused_rate
        capacity = self._capacity(step, activating)
        needed = (
            replicas_for(offered, step.waiting, step.drain_target_s, step.service_rate)
            if step.service_rate
            else step.needed
        )
        over_max = needed > step.max_replicas
        net = capacity - offered
        drain_s = 0.0 if step.waiting == 0 else (step.waiting / net if net > 0 else math.inf)
        rate = max(s.min_rate_per_s, capacity * (1 - s.margin))

        if self.rate is None:
            exhausted = starved or (over_max and not activating)
            if not s.enabled or not exhausted or drain_s <= step.drain_target_s:
                return Verdict(None, "", "", False)
            self.rate, self._recovered_since = rate, None
            self.reason = "max_replicas" if over_max else "replicas_not_ready"
            detail = (
                f"needs {needed} replicas, may have {step.max_replicas}"
                if over_max
                else f"{step.ready} of {step.desired} replicas ready for {s.ready_grace_s:g} s"
            )
            return Verdict(rate, self.reason, detail + f"; capacity {capacity:.1f}/s", True)

        if step.waiting == 0 and activating:
            # Nothing queued and no replica up (scaled to zero, or coming up):
            # nothing to protect. Lifted at once; should the route be
            # exhausted again, it is throttled again by the rules above.
            self.rate, self.reason, self._recovered_since = None, "", None
            return Verdict(None, "", "nothing queued, no replicas: nothing to protect", True)
        backlog_s = step.waiting / capacity if capacity > 0 else math.inf
        recovered = step.waiting == 0 or backlog_s <= s.low_water_s
        if recovered and not over_max and not starved:
            if self._recovered_since is None:
                self._recovered_since = step.t_s
            if step.t_s - self._recovered_since >= s.hold_s:
                self.rate, self.reason = None, ""
                return Verdict(None, "", "recovered", True)
        else:
            self._recovered_since = None
        changed = abs(rate - self.rate) > RATE_CHANGE * self.rate
        if changed:
            self.rate = rate
        return Verdict(self.rate, self.reason, f"capacity {capacity:.1f}/s", changed)
