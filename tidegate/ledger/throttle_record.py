"""The capacity throttle of a route, as the scaler sets it and every gateway reads it.

Set by the scaler, enforced by every gateway: the state (``tidegate.throttle.
Throttle``) lives in the route's throttle hash (``tg:{route}:throttle``), and
the admit script keeps the shared token bucket (``tokens``, ``ts_ms``) in the
same hash, on Redis server time. The hash expires unless the scaler refreshes
it, so a throttle outlives its scaler by ``ttl_s`` at most. Every change is
announced on the route's throttle channel; gateways also re-read on a timer.

A partitioned route has a hash per partition (each in its slot, where the
admit script of that partition reads it), each at 1/P of the rate and burst
(``tidegate.throttle.share_of``); ``read`` adds them back up.

Quotas on proxy routes (no queue, so no admit call) are taken with
``quota_call``, one script call on the same bucket code, which
``Ledger.take_quota`` runs (the gateway's ledger sends concurrent ones
together, and takes several tokens at once from a bucket with tokens to
spare: ``quota_leases``).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from tidegate.keys import Partitioned, RouteKeys, parts_of
from tidegate.ledger.calls import Quota
from tidegate.ledger.client import Connection, read_again_if_closed, redis_errors, text
from tidegate.settings import QuotaSettings
from tidegate.throttle import Throttle, share_of


def combined(found: list[Throttle | None]) -> Throttle | None:
    """A route's throttle from its partitions' (None: not set on any)."""
    states = [state for state in found if state is not None]
    if not states:
        return None
    if len(states) == 1:
        return states[0]
    times = [s.tokens_at_s for s in states if s.tokens_at_s is not None]
    return replace(
        states[0],
        rate_per_s=sum(s.rate_per_s for s in states),
        burst=sum(s.burst for s in states),
        tokens=sum(s.burst if s.tokens is None else s.tokens for s in states) if times else None,
        tokens_at_s=min(times) if times else None,
    )


async def _read(redis: Connection, keys: RouteKeys) -> Throttle | None:
    raw: Any = await read_again_if_closed(
        "reading the throttle", lambda: redis.hgetall(keys.throttle)
    )
    return parsed(raw)


def parsed(raw: dict[Any, Any]) -> Throttle | None:
    """A partition's throttle from its hash, as HGETALL answers it."""
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


def quota_call(route: str, tenant: str, quota: QuotaSettings, want: int = 1) -> Quota:
    """The call that takes a token from the tenant's quota on a route that
    does not queue (proxy), and up to ``want`` when the bucket has them to
    spare (``quota_leases``)."""
    return Quota(
        route=RouteKeys(route),
        tenant=tenant,
        rate_per_s=quota.rate_per_s,
        burst=quota.bucket_size,
        want=want,
    )


class Throttles:
    """A route's throttle: set and lifted by the scaler, read by gateways."""

    def __init__(self, redis: Connection) -> None:
        self._redis = redis

    async def apply(
        self, route: str | Partitioned, throttle: Throttle, ttl_s: float, announce: bool
    ) -> None:
        """Set or refresh the throttle; ``announce`` publishes the change."""
        parts = parts_of(route)
        rate_per_s, burst = share_of(throttle.rate_per_s, throttle.burst, len(parts))
        with redis_errors("setting the throttle"):
            for keys in parts:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hset(
                        keys.throttle,
                        mapping={
                            "rate": repr(rate_per_s),
                            "burst": burst,
                            "reason": throttle.reason,
                            "detail": throttle.detail,
                            "since_ms": int(throttle.since_s * 1000),
                            "status": throttle.status,
                        },
                    )
                    pipe.pexpire(keys.throttle, int(ttl_s * 1000))
                    await pipe.execute()
            if announce:
                await self._redis.spublish(RouteKeys(parts[0].route).throttle_channel, "set")

    async def lift(self, route: str | Partitioned) -> None:
        parts = parts_of(route)
        with redis_errors("lifting the throttle"):
            for keys in parts:
                await self._redis.delete(keys.throttle)
            await self._redis.spublish(RouteKeys(parts[0].route).throttle_channel, "lifted")

    async def read(self, route: str | Partitioned) -> Throttle | None:
        """The route's throttle (its partitions' shares added up), or None when not set."""
        found = await asyncio.gather(*(_read(self._redis, keys) for keys in parts_of(route)))
        return combined(found)
