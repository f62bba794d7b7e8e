"""What the scaling policy (``scaler.policy``) is given and what it answers:
its settings, one sample of a route, and its decision. Plain values, so the
loop, the status writer and the simulator share them without the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tidegate.settings import ScalerSettings


def _configured(name: str) -> Any:
    """A scaler setting's default as ``tidegate.settings`` declares it: read,
    not repeated."""
    fields = getattr(ScalerSettings, "__pydantic_fields__")  # noqa: B009 (pydantic sets it)
    return fields[name].default


@dataclass(frozen=True)
class PolicySettings:
    """The policy's knobs. Those an operator sets are the route's scaler
    settings (``of``), their defaults declared once, in ``ScalerSettings``;
    the rest are the policy's own."""

    min_replicas: int = _configured("min_replicas")
    max_replicas: int = _configured("max_replicas")
    drain_target_s: float = _configured("drain_target_s")
    scale_down_window_s: float = _configured("scale_down_window_s")
    tolerance: float = _configured("tolerance")
    """Relative change below which replicas are not reduced (against flapping)."""
    lag_per_replica: int = _configured("lag_per_replica")
    """Backlog per replica used before the service rate is known."""
    smoothing: float = 0.3
    """Weight of the newest value in the moving averages (0 < x <= 1)."""
    activation_backlog: int = _configured("activation_backlog")
    """Backlog above which a route at zero gets its first replica."""
    noise_z: float = 2.0
    """Half-width of the noise band, in standard deviations of the smoothed
    arrival rate: changes inside it are what chance explains."""
    surge_z: float = 3.0
    """A latest arrival rate this many standard deviations above the smoothed
    one is a surge, sized for at once."""
    startup_s: float = 10.0
    """Pod start-up time until one is measured (from ready transitions)."""
    predict: bool = _configured("predict") == "periodic"
    """Learn a repeating arrival pattern and scale ahead of it (``scaler.predict``)."""
    scale_down_step_s: float | None = None
    """At most one scale-down per this many seconds (and none this soon after
    any change): a need that decays is followed in a few writes, not one per
    interval. None: half the scale-down window."""

    @classmethod
    def of(cls, s: ScalerSettings) -> PolicySettings:
        """The policy for a route's scaler settings."""
        return cls(
            min_replicas=s.min_replicas,
            max_replicas=s.max_replicas,
            drain_target_s=s.drain_target_s,
            scale_down_window_s=s.scale_down_window_s,
            tolerance=s.tolerance,
            lag_per_replica=s.lag_per_replica,
            activation_backlog=s.activation_backlog,
            predict=s.predict == "periodic",
        )


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
    busy_replicas: int | None = None
    """Replicas working on a job now (None: unknown); scale-in keeps them."""


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
    predicted_rate: float | None = None
    """Arrivals per second the pattern says come within a start-up time (None:
    no prediction, or no pattern that holds)."""
