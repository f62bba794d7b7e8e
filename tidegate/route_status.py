"""One route's status as operators see it, from Redis alone.

The backlog is measured on the spot (``tidegate.backlog``); rates and
replicas come from the scaler's latest published view
(``tidegate.scaler_view``), ``None`` when no scaler has published one lately;
the throttle, when one is set, from the route's throttle hash.
The gateway's ``/status`` and ``tidegate status`` both show this.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from tidegate import backlog, scaler_view, throttle
from tidegate.redact import redact_url
from tidegate.settings import Settings


async def routes_status(redis: Redis, settings: Settings) -> dict[str, dict[str, Any]]:
    """Per route: mode, backlog fields and ``scaler``; RedisUnavailable when down."""
    queued = [r for r in settings.routes if r.mode != "proxy"]
    measured = await asyncio.gather(*(backlog.measure(redis, r.name) for r in queued))
    views = await asyncio.gather(*(scaler_view.read(redis, r.name) for r in queued))
    throttles = await asyncio.gather(*(throttle.read(redis, r.name) for r in queued))
    out: dict[str, dict[str, Any]] = {}
    for route in settings.routes:
        upstream = redact_url(route.upstream) if route.upstream else None
        out[route.name] = {"mode": route.mode, "upstream": upstream}
    for route, found, view, state in zip(queued, measured, views, throttles, strict=True):
        out[route.name] = {
            "mode": route.mode,
            **found.as_dict(),
            "scaler": view,
            "throttle": state.as_dict() if state else None,
        }
    return out
