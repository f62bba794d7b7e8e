"""Helpers of the scaler tests: a fake clock, settings, a route loop, stream entries."""

from __future__ import annotations

import sys
from typing import Any

from scaler.deployment import DeploymentActuator
from scaler.kube import Kube
from scaler.metrics import ScalerMetrics
from scaler.route_loop import RouteLoop
from tidegate.keys import GROUP, RouteKeys
from tidegate.ledger.client import Connection
from tidegate.ledger.groups import ensure_group
from tidegate.ledger.store import Store
from tidegate.settings import (
    ScalerSettings,
    Settings,
    TargetSettings,
    parse_settings,
)

NS, DEPLOY = "shop", "orders-worker"
SCALER_CMD = [sys.executable, "-m", "tidegate", "scaler"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scaler_settings(**overrides: Any) -> ScalerSettings:
    values: dict[str, Any] = {
        "target": TargetSettings(kind="deployment", namespace=NS, name=DEPLOY),
        "max_replicas": 10,
        "lag_per_replica": 100,
        "scale_down_window_s": 10,
        "interval_s": 1,
    }
    values.update(overrides)
    return ScalerSettings(**values)


def route_loop(
    kube: Kube, redis: Connection, clock: Clock, settings: ScalerSettings | None = None, **kw: Any
) -> RouteLoop:
    return RouteLoop(
        "orders",
        settings or scaler_settings(),
        DeploymentActuator(kube, NS, DEPLOY),
        Store(redis),
        ScalerMetrics(),
        clock=clock,
        **kw,
    )


async def add_entries(
    redis: Connection, n: int, route: str = "orders", keys: RouteKeys | None = None
) -> None:
    """``n`` entries in the route's stream (or in the partition ``keys``)."""
    stream = (keys or RouteKeys(route)).requests
    await ensure_group(redis, stream, GROUP)
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.xadd(stream, {"job": f"{route}.{i}"})
        await pipe.execute()


async def drain_all(redis: Connection, route: str = "orders") -> None:
    stream = RouteKeys(route).requests
    reply: Any = await redis.xreadgroup(GROUP, "w", {stream: ">"}, count=100_000)
    ids = [entry_id for entry_id, _ in reply[0][1]] if reply else []
    if ids:
        await redis.xack(stream, GROUP, *ids)


def controller_settings(redis_url: str, **scaler: Any) -> Settings:
    return parse_settings(
        {
            "redis": {"url": redis_url},
            "scaler": {"namespaces": [NS], "admin_listen": "127.0.0.1:0", **scaler},
            "routes": [
                {"name": "orders", "match": {"path_prefix": "/orders"}},
                {"name": "reports", "match": {"path_prefix": "/reports"}},
            ],
        }
    )


def deployment_routes(count: int, namespace: str, **scaler: Any) -> list[dict[str, Any]]:
    """``count`` async routes ``svc-N``, each scaling its own Deployment
    ``svc-N-worker`` (config file form; what the many-routes tests and the
    scaler benchmark run)."""
    return [
        {
            "name": f"svc-{n}",
            "match": {"path_prefix": f"/svc-{n}"},
            "mode": "async",
            "scaler": {
                "target": {"kind": "deployment", "namespace": namespace, "name": f"svc-{n}-worker"},
                **scaler,
            },
        }
        for n in range(count)
    ]
