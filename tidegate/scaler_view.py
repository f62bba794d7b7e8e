"""The scaler's view of each route, published in Redis for everyone to read.

Redis is the only meeting point of the parts: the gateway's ``/status`` and
``tidegate status`` read this hash (``tg:{route}:scaler``) instead of asking
the scaler. It expires a few intervals after the last write, so a view from a
scaler that stopped does not linger as if current.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from tidegate.keys import RouteKeys
from tidegate.redis_client import text, unavailable_as_error

VIEW_TTL_INTERVALS = 5
MIN_VIEW_TTL_S = 10.0


async def publish(redis: Redis, route: str, view: dict[str, Any], interval_s: float) -> None:
    key = RouteKeys(route).scaler
    ttl_ms = int(max(MIN_VIEW_TTL_S, interval_s * VIEW_TTL_INTERVALS) * 1000)
    with unavailable_as_error("publishing the scaler's view"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={k: json.dumps(v) for k, v in view.items()})
            pipe.pexpire(key, ttl_ms)
            await pipe.execute()


async def read(redis: Redis, route: str) -> dict[str, Any] | None:
    """The latest view, or None when no scaler has published one lately."""
    with unavailable_as_error("reading the scaler's view"):
        raw: Any = await redis.hgetall(RouteKeys(route).scaler)
    if not raw:
        return None
    return {text(k): json.loads(text(v)) for k, v in raw.items()}
