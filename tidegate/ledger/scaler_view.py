"""The scaler's view of each route, kept in Redis for everyone to read.

Redis is the only meeting point of the parts: the gateway's ``/status`` and
``tidegate status`` read this hash (``tg:{route}:scaler``) instead of asking
the scaler. It expires a few intervals after the last write, so a view from a
scaler that stopped does not linger as if current.
"""

from __future__ import annotations

import json
from typing import Any

from tidegate.keys import RouteKeys
from tidegate.ledger.client import Connection, redis_errors, text
from tidegate.scaler_view import ScalerView

VIEW_TTL_INTERVALS = 5
MIN_VIEW_TTL_S = 10.0


async def publish(redis: Connection, route: str, view: ScalerView, interval_s: float) -> None:
    key = RouteKeys(route).scaler
    ttl_ms = int(max(MIN_VIEW_TTL_S, interval_s * VIEW_TTL_INTERVALS) * 1000)
    with redis_errors("publishing the scaler's view"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={k: json.dumps(v) for k, v in view.as_dict().items()})
            pipe.pexpire(key, ttl_ms)
            await pipe.execute()


async def read(redis: Connection, route: str) -> ScalerView | None:
    """The latest view, or None when no scaler has published one lately."""
    with redis_errors("reading the scaler's view"):
        raw: Any = await redis.hgetall(RouteKeys(route).scaler)
    if not raw:
        return None
    return ScalerView.from_dict({text(k): json.loads(text(v)) for k, v in raw.items()})
