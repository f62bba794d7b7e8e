"""Time from a burst of entries to the scale write, with real Redis and the
fake Kubernetes API server (``tests/fake_kube.py``).

The scaler runs in process (``scaler.main.serve``) on a route whose
Deployment sits at zero replicas; each round adds a burst of entries to the
route's stream and measures the time until the API server receives the PUT
on ``deployments/scale``. Then the stream is drained, the scaler takes the
Deployment back to zero (scale-down window 0), and the next round starts at
a random phase of the sampling interval. Target: at most 2 x ``interval_s``;
the result is reported as a ratio to ``interval_s``.

Usage: python bench/scaler_latency.py [--rounds 20] [--interval-s 1.0] [--burst 500]
Needs redis-server on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fake_kube

from redis.asyncio import Redis

from scaler.main import serve
from shell.local_redis import free_port, start_redis_server, wait_for_port
from tests.fake_kube import FakeKube
from tidegate.keys import GROUP, RouteKeys
from tidegate.settings import parse_settings

NS, NAME = "bench", "orders-worker"


async def until(predicate: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the scaler did not act in time")
        await asyncio.sleep(0.005)


async def bench(rounds: int, interval_s: float, burst: int, folder: Path) -> list[float]:
    port = free_port()
    server = start_redis_server(port, folder)
    wait_for_port(port)
    fake = FakeKube()
    await fake.start()
    fake.add_deployment(NS, NAME, replicas=0)
    kubeconfig = fake.kubeconfig(folder / "kubeconfig")
    settings = parse_settings(
        {
            "redis": {"url": f"redis://127.0.0.1:{port}/0"},
            "scaler": {"leader_election": False, "admin_listen": "127.0.0.1:0"},
            "routes": [
                {
                    "name": "orders",
                    "match": {"path_prefix": "/orders"},
                    "scaler": {
                        "target": {"kind": "deployment", "namespace": NS, "name": NAME},
                        "interval_s": interval_s,
                        "scale_down_window_s": 0,
                    },
                }
            ],
        }
    )
    redis = Redis(port=port)
    stream = RouteKeys("orders").requests
    await redis.xgroup_create(stream, GROUP, id="$", mkstream=True)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, "unused.yaml", stop, kubeconfig=str(kubeconfig)))
    latencies = []
    try:
        for _ in range(rounds):
            await asyncio.sleep(random.uniform(0, interval_s))  # a random phase
            writes = len(fake.scale_writes())
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(burst):
                    pipe.xadd(stream, {"job": f"orders.{i}"})
                await pipe.execute()
            added = time.monotonic()
            await until(lambda n=writes: len(fake.scale_writes()) > n)
            latencies.append(fake.scale_writes()[writes].at_s - added)
            reply: Any = await redis.xreadgroup(GROUP, "w", {stream: ">"}, count=burst)
            await redis.xack(stream, GROUP, *[entry for entry, _ in reply[0][1]])
            await until(lambda: fake.replicas(NS, NAME) == 0)
    finally:
        stop.set()
        await task
        await redis.aclose()
        await fake.stop()
        server.terminate()
        server.wait()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval-s", type=float, default=1.0)
    parser.add_argument("--burst", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        latencies = asyncio.run(bench(args.rounds, args.interval_s, args.burst, Path(folder)))
    quantiles = statistics.quantiles(latencies, n=20, method="inclusive")
    p50, p95 = statistics.median(latencies), quantiles[18]
    print(f"burst -> scale write over {len(latencies)} rounds, interval_s {args.interval_s}:")
    print(
        f"  p50 {p50:.3f} s ({p50 / args.interval_s:.2f}x interval), "
        f"p95 {p95:.3f} s ({p95 / args.interval_s:.2f}x), "
        f"max {max(latencies):.3f} s ({max(latencies) / args.interval_s:.2f}x); target <= 2x"
    )


if __name__ == "__main__":
    main()
