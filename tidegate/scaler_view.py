"""What the scaler decided for a route, as everyone else reads it.

The scaler publishes one ``ScalerView`` per route and tick into Redis
(``tidegate.ledger.view_record``); the gateway's ``/status``, ``tidegate
status`` and the demo's live line read it back. One typed record, so the
three readers and the writer cannot drift apart on a key's spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ScalerView:
    waiting: int | None
    """Entries not yet delivered (None: the last sample failed)."""
    pending: int
    oldest_waiting_age_s: float | None
    arrival_rate: float
    """Admissions per second (EWMA)."""
    drain_rate: float
    """Completions per second (EWMA)."""
    service_rate: float | None
    """Completions per second per busy replica, once learned."""
    desired_replicas: int
    needed_replicas: int
    current_replicas: int
    ready_replicas: int
    max_replicas: int
    exhausted: bool
    reason: str
    target: str
    """The actuator, as an operator reads it (``deployment ns/name``)."""
    throttle: dict[str, Any] | None
    refused_rate: float
    updated_at_s: float
    predicted_rate: float | None = None
    """Arrivals per second a learned pattern says come within a start-up time
    (``scaler.predict: periodic``; None: no prediction)."""

    def as_dict(self) -> dict[str, Any]:
        # Shallow: the fields are plain values and one plain dict (the
        # throttle); ``dataclasses.asdict`` deep-copies every value, and the
        # scaler writes hundreds of views a second.
        return {f.name: getattr(self, f.name) for f in _FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScalerView:
        """Read back a published view; fields an older scaler did not write are
        left at their zero value."""
        zero: dict[str, Any] = {
            "waiting": None,
            "oldest_waiting_age_s": None,
            "service_rate": None,
            "throttle": None,
            "exhausted": False,
            "reason": "",
            "target": "",
            "predicted_rate": None,
        }
        values = {}
        for f in fields(cls):
            values[f.name] = data.get(f.name, zero.get(f.name, 0))
        return cls(**values)


_FIELDS = fields(ScalerView)
