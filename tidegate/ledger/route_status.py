"""One route's status as operators see it, from Redis alone.

The backlog is measured on the spot (``backlog``); rates and replicas come
from the scaler's latest published view (``view_record``), ``None`` when no
scaler has published one lately; the throttle, when one is set, from the
route's throttle hash. The gateway's ``/status`` and ``tidegate status``
both show this.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tidegate.keys import RouteKeys, parts_of
from tidegate.ledger import backlog, throttle_record, view_record
from tidegate.ledger.client import Connection, read_pipeline_again_if_closed
from tidegate.ledger.runner import Runner
from tidegate.ledger.transport import ready
from tidegate.redact import redact_url
from tidegate.scaler_view import ScalerView
from tidegate.settings import Settings
from tidegate.throttle import Throttle


@dataclass(frozen=True)
class RouteStatus:
    mode: str
    upstream: str | None = None
    """Proxy routes: where requests go (password masked)."""
    backlog: backlog.Backlog | None = None
    scaler: ScalerView | None = None
    throttle: Throttle | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.backlog is None:
            return {"mode": self.mode, "upstream": self.upstream}
        return {
            "mode": self.mode,
            **self.backlog.as_dict(),
            "scaler": self.scaler.as_dict() if self.scaler else None,
            "throttle": self.throttle.as_dict() if self.throttle else None,
        }


async def routes_status(redis: Connection, settings: Settings) -> dict[str, RouteStatus]:
    """Per route, in config order; RedisUnavailable when Redis is down.

    A few round trips whatever the number of routes: every partition's
    backlog by one ``sample.lua`` call, all in one batched pipeline, and
    every view and throttle hash in one more (per node, on a cluster)."""
    queued = [r for r in settings.routes if r.mode != "proxy"]
    await ready(redis)
    runner = Runner(redis, batched=True, max_batch=1024)
    runner.start()
    try:
        sampled = await asyncio.gather(*(backlog.sampled(redis, r, runner=runner) for r in queued))
    finally:
        await runner.close()
    measured = [found for found, _ in sampled]

    def views_and_throttles(pipe: Any) -> None:
        for route in queued:
            pipe.hgetall(RouteKeys(route.name).scaler)
            for keys in parts_of(route):
                pipe.hgetall(keys.throttle)

    hashes = iter(
        await read_pipeline_again_if_closed(
            redis, "reading the scaler views and throttles", views_and_throttles
        )
    )
    views, throttles = [], []
    for route in queued:
        views.append(view_record.parsed(next(hashes)))
        throttles.append(
            throttle_record.combined(
                [throttle_record.parsed(next(hashes)) for _ in parts_of(route)]
            )
        )
    out = {
        route.name: RouteStatus(route.mode, redact_url(route.upstream) if route.upstream else None)
        for route in settings.routes
    }
    for route, found, view, state in zip(queued, measured, views, throttles, strict=True):
        out[route.name] = RouteStatus(route.mode, backlog=found, scaler=view, throttle=state)
    return out
