"""Admission on a 3-master Redis Cluster: 1, 2 and 3 gateways, 1 vs 3 partitions.

One config holds two async routes, ``one`` (``partitions: 1``) and ``three``
(``partitions: 3``); three ``tidegate gateway`` processes serve it. Each
measurement drives N of the gateways (N = 1, 2, 3) at once, one ``wrk`` per
gateway, against one of the routes, and reports:

- the admissions per second of all N together, as a ratio to one gateway on
  the one-partition route in the same round (rounds interleave every
  configuration, so machine noise hits all of them);
- where Redis did the work: each master's share of the EVALSHA time
  (``INFO commandstats``) spent during the measurement. One partition puts
  all of a route on one master; three spread it over the three.

On a 2-core machine the gateways' Python is the limit long before any Redis
master is, so throughput cannot grow with partitions here; what this shows is
that the load spreads, and what partitioning costs a gateway. The capacity
model in docs/benchmarks.md says what that buys on a real cluster.

Usage: python bench/partitions.py [--duration-s 8] [--rounds 3] [--connections 32]
Needs wrk, redis-server and redis-cli on PATH (or the test extra's Valkey).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from admission import POST_LUA, parse_wrk, wrk_command  # noqa: E402
from redis.asyncio.cluster import RedisCluster  # noqa: E402
from throttle import start_gateways  # noqa: E402

from tests.redis_cluster import RedisCluster as LocalCluster  # noqa: E402

ROUTES = {"one": 1, "three": 3}
GATEWAYS = (1, 2, 3)


async def evalsha_usec_per_master(url: str) -> dict[str, int]:
    client = RedisCluster.from_url(url)
    try:
        per_node: Any = await client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
    finally:
        await client.aclose()
    return {
        node: int((stats.get("cmdstat_evalsha") or {}).get("usec", 0))
        for node, stats in per_node.items()
    }


def config(cluster_url: str) -> dict[str, Any]:
    routes = [
        {
            "name": name,
            "match": {"path_prefix": "/" + name, "methods": ["POST"]},
            "mode": "async",
            "result_ttl_s": 600,
            "partitions": partitions,
        }
        for name, partitions in ROUTES.items()
    ]
    return {"redis": {"url": cluster_url, "mode": "cluster"}, "routes": routes}


def drive(ports: list[int], route: str, script: Path, duration_s: int, connections: int) -> float:
    """One wrk per gateway, all at once; the admissions per second of all together."""
    runs = [
        subprocess.Popen(
            wrk_command(f"http://127.0.0.1:{port}/{route}", script, duration_s, connections, 1),
            stdout=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    total = 0.0
    for port, run in zip(ports, runs, strict=True):
        out, _ = run.communicate()
        total += parse_wrk(f"gateway :{port}", out)["rps"]
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    cluster = LocalCluster()
    cluster.start()
    results: dict[tuple[int, str], list[float]] = {}
    shares: dict[str, list[list[float]]] = {route: [] for route in ROUTES}
    try:
        with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as name:
            folder = Path(name)
            script = folder / "post.lua"
            script.write_text(POST_LUA)
            gateways = start_gateways(folder, config(cluster.url), max(GATEWAYS))
            ports = [port for _, port in gateways]
            try:
                time.sleep(1.0)
                for route in ROUTES:  # warm-up, not counted
                    drive(ports, route, script, 2, args.connections)
                for round_no in range(args.rounds):
                    for n in GATEWAYS:
                        for route in ROUTES:
                            before = asyncio.run(evalsha_usec_per_master(cluster.url))
                            rps = drive(ports[:n], route, script, args.duration_s, args.connections)
                            after = asyncio.run(evalsha_usec_per_master(cluster.url))
                            spent = sorted(after[k] - before.get(k, 0) for k in after)
                            shares[route].append([x / max(1, sum(spent)) for x in spent])
                            results.setdefault((n, route), []).append(rps)
                            print(
                                f"round {round_no + 1}: {n} gateway(s), route {route}: "
                                f"{rps:.0f} admissions/s; Lua time per master "
                                f"{', '.join(f'{x:.0%}' for x in shares[route][-1])}",
                                flush=True,
                            )
            finally:
                for proc, _ in gateways:
                    proc.terminate()
                for proc, _ in gateways:
                    proc.wait(10)
    finally:
        cluster.close()

    baseline = results[(1, "one")]
    print()
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration_s}s per gateway, {args.rounds} rounds; "
        "ratio: median over rounds against 1 gateway on 1 partition, same round"
    )
    print("| gateways | partitions | admissions/s (median) | ratio |")
    print("|---:|---:|---:|---:|")
    for (n, route), rows in results.items():
        ratios = [r / b for r, b in zip(rows, baseline, strict=True)]
        print(
            f"| {n} | {ROUTES[route]} | {statistics.median(rows):.0f} | "
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )
    print()
    print("| partitions | Lua time per master, least to most busy (mean over runs) |")
    print("|---:|---|")
    for route, runs in shares.items():
        mean = [statistics.mean(column) for column in zip(*runs, strict=True)]
        print(f"| {ROUTES[route]} | {', '.join(f'{x:.0%}' for x in mean)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
