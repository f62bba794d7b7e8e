"""The scaler's route loops alone: CPU per route-second without Kubernetes.

N ``RouteLoop`` tasks (``interval_s`` 1, idle routes) run in this process on
one batched ``Runner``, as ``tidegate scaler`` runs them, against a
redis-server started here; the actuator is an in-memory stand-in, so no
Kubernetes client, informer thread or admin server is counted. After a
warm-up, this process's CPU time over the window, per route and second, in
ms. What ``bench/scaler_routes.py`` measures minus this is what the process
around the loops costs.

Usage: python bench/scaler_step.py [--routes 1000] [--window-s 10]
Needs redis-server on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaler.actuator import Replicas
from scaler.metrics import ScalerMetrics
from scaler.route_loop import RouteLoop
from tests.redis_server import RedisServer
from tidegate.ledger.client import connect
from tidegate.ledger.runner import Runner
from tidegate.ledger.store import Store
from tidegate.settings import RedisSettings, ScalerSettings, TargetSettings


class StandIn:
    """A target that always has one replica, ready."""

    describe = "stand-in"

    async def observe(self) -> Replicas:
        return Replicas(1, 1, 1)

    async def scale(self, replicas: int) -> bool:
        return True

    async def prefer_idle(self, busy: Mapping[str, int]) -> int:
        return 0

    async def close(self) -> None:
        return None


async def measure(url: str, routes: int, warmup_s: float, window_s: float) -> float:
    redis = connect(RedisSettings(url=url))
    runner = Runner(redis, batched=True)
    runner.start()
    settings = ScalerSettings(
        target=TargetSettings(kind="deployment", namespace="bench", name="w"),
        min_replicas=1,
        interval_s=1,
    )
    metrics = ScalerMetrics()
    loops = [
        RouteLoop(f"svc-{n}", settings, StandIn(), Store(redis), metrics, runner=runner)
        for n in range(routes)
    ]
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    try:
        await asyncio.sleep(warmup_s)
        before = time.process_time()
        await asyncio.sleep(window_s)
        used = time.process_time() - before
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.close()
        await redis.aclose()
    return used * 1000 / (routes * window_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    args = parser.parse_args()
    with RedisServer() as server:
        ms = asyncio.run(measure(server.url, args.routes, args.warmup_s, args.window_s))
    print(f"{args.routes} route loops: {ms:.3f} ms CPU per route-second (no Kubernetes client)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
