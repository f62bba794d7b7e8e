"""Operator commands that need only Redis: ``tidegate status`` and ``tidegate replay``."""

from __future__ import annotations

import json

from tidegate import backlog
from tidegate.ledger import Ledger
from tidegate.redis_client import connect
from tidegate.settings import Settings


async def print_status(settings: Settings, *, as_json: bool = False) -> int:
    """One row per queued route: waiting (backlog), pending, stream length."""
    redis = connect(settings.redis)
    try:
        rows = [await backlog.measure(redis, r.name) for r in settings.routes if r.mode != "proxy"]
    finally:
        await redis.aclose()
    if as_json:
        print(json.dumps({"routes": [row.as_dict() for row in rows]}, indent=2))
        return 0
    print(f"{'ROUTE':<24} {'BACKLOG':>9} {'PENDING':>9} {'STREAM':>9}  SOURCE")
    for row in rows:
        waiting = f"{row.waiting}" if row.exact else f">={row.waiting}"
        print(f"{row.route:<24} {waiting:>9} {row.pending:>9} {row.length:>9}  {row.source}")
    for route in settings.routes:
        if route.mode == "proxy":
            print(f"{route.name:<24} {'-':>9} {'-':>9} {'-':>9}  proxy to {route.upstream}")
    return 0


async def replay_route(settings: Settings, route_name: str) -> int:
    """Rebuild every projection of a route from its event stream."""
    route = settings.route(route_name)
    redis = connect(settings.redis)
    try:
        report = await Ledger(redis, settings.routes).replay(route.name)
    finally:
        await redis.aclose()
    print(
        f"route {route.name}: replayed {report.events} event(s) of {report.jobs} job(s)"
        + (f"; {report.refused} refused (log inconsistent)" if report.refused else "")
    )
    return 1 if report.refused else 0
