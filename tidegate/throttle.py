"""The capacity throttle of a route: set by the scaler, enforced by every gateway.

State lives in Redis, in the route's throttle hash (``tg:{route}:throttle``):
``rate`` (admissions per second), ``burst`` (tokens), ``reason``, ``detail``,
``since_ms`` and the answer's ``status``; the admit script keeps the shared
token bucket (``tokens``, ``ts_ms``) in the same hash, on Redis server time.
The hash expires unless the scaler refreshes it, so a throttle outlives its
scaler by ``ttl_s`` at most. Every change is announced on the route's
throttle channel; gateways also re-read on a short timer.

Enforcement does not depend on a gateway having heard: the admit script reads
the hash in the same atomic call that enqueues. What a gateway keeps is a view
for its metrics and logs.

Quotas on proxy routes (no queue, so no admit call) are taken with
``take_quota``, one script call on the same bucket code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from tidegate import scripts
from tidegate.errors import Refused
from tidegate.keys import RouteKeys
from tidegate.redis_client import text, unavailable_as_error
from tidegate.settings import TenantSettings


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


async def apply(redis: Redis, route: str, throttle: Throttle, ttl_s: float, announce: bool) -> None:
    """Set or refresh the throttle; ``announce`` publishes the change."""
    keys = RouteKeys(route)
    with unavailable_as_error("setting the throttle"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.throttle,
                mapping={
                    "rate": repr(throttle.rate_per_s),
                    "burst": throttle.burst,
                    "reason": throttle.reason,
                    "detail": throttle.detail,
                    "since_ms": int(throttle.since_s * 1000),
                    "status": throttle.status,
                },
            )
            pipe.pexpire(keys.throttle, int(ttl_s * 1000))
            if announce:
                pipe.publish(keys.throttle_channel, "set")
            await pipe.execute()


async def lift(redis: Redis, route: str) -> None:
    keys = RouteKeys(route)
    with unavailable_as_error("lifting the throttle"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.throttle)
            pipe.publish(keys.throttle_channel, "lifted")
            await pipe.execute()


async def read(redis: Redis, route: str) -> Throttle | None:
    with unavailable_as_error("reading the throttle"):
        raw: Any = await redis.hgetall(RouteKeys(route).throttle)
    fields = {text(k): text(v) for k, v in raw.items()}
    if "rate" not in fields:
        return None
    return Throttle(
        rate_per_s=float(fields["rate"]),
        burst=int(fields.get("burst", "1")),
        reason=fields.get("reason", ""),
        detail=fields.get("detail", ""),
        since_s=int(fields.get("since_ms", "0")) / 1000,
        status=int(fields.get("status", "429")),
        tokens=float(fields["tokens"]) if "tokens" in fields else None,
        tokens_at_s=int(fields["ts_ms"]) / 1000 if "ts_ms" in fields else None,
    )


async def take_quota(redis: Redis, route: str, tenant: TenantSettings) -> Refused | None:
    """Take a token from the tenant's quota on a route that does not queue
    (proxy); the refusal when the quota is used up, else None."""
    quota = tenant.quota
    if quota is None:
        return None
    keys = RouteKeys(route)
    with unavailable_as_error("checking a quota"):
        ok, info = await scripts.call(
            redis,
            "quota",
            [keys.quota(tenant.name), keys.refused],
            [quota.rate_per_s, quota.bucket_size],
        )
    if int(ok):
        return None
    retry_ms, remaining, limit, window_s = (int(x) for x in text(info).split(","))
    return Refused("quota", retry_ms / 1000, remaining, limit, window_s)
