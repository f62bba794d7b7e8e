"""A route's capacity throttle: the state the scaler sets and gateways enforce.

The scaler's governor (``scaler.throttle_governor``) decides when scaling is
exhausted and at what rate the front door may admit; the scaler's throttle
writer (``scaler.throttle_keeper``) keeps this state in Redis
(``tidegate.ledger.throttle_record``); the admit script enforces it on every
admission; each gateway's watcher (``gateway.throttle_watch``) mirrors it
into metrics. One name for one thing: the throttle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Throttle:
    rate_per_s: float
    burst: int
    reason: str
    """``max_replicas`` (more are needed than allowed) or ``replicas_not_ready``."""
    detail: str
    since_s: float
    status: int = 429
    tokens: float | None = None
    """The shared bucket's level when last written (None: untouched, full)."""
    tokens_at_s: float | None = None

    def fill(self, now_s: float) -> float:
        """Tokens in the bucket at ``now_s`` (refilled since the last write)."""
        if self.tokens is None or self.tokens_at_s is None:
            return float(self.burst)
        refill = max(0.0, now_s - self.tokens_at_s) * self.rate_per_s
        return min(float(self.burst), self.tokens + refill)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate_per_s": round(self.rate_per_s, 3),
            "burst": self.burst,
            "reason": self.reason,
            "detail": self.detail,
            "since_s": round(self.since_s, 3),
            "status": self.status,
        }


def share_of(rate_per_s: float, burst: int, partitions: int) -> tuple[float, int]:
    """One partition's bucket of a route-wide (rate, burst).

    New jobs are spread evenly over a route's partitions (round-robin per
    tenant, ``keys.PartitionChooser``), so each partition's bucket holds 1/P
    of the rate and of the burst (at least 1, so the smallest burst still
    admits): together they admit the route's rate."""
    if partitions == 1:
        return rate_per_s, burst
    return rate_per_s / partitions, max(1, -(-burst // partitions))
