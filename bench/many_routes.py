"""A thousand routes at the gateway: admission throughput and the admin pages.

Two ``tidegate gateway`` processes on one redis-server: one with a single
async route, one with ``--routes`` async routes (``/svc-N/api``), driven in
turn by the same ``wrk`` load (POST of a small JSON body) at the *last*
route, the one a scan in config order would reach last. Rounds interleave
the two; the ratio is taken per round, median over rounds. Then the admin
pages of the big one: the time of ``GET /status`` and ``GET /metrics``
(median of 5), with every route idle.

Both gateways are pinned to core 0 (only the one under load is busy), Redis
and wrk to core 1 (``taskset``, as ``bench/sync_path.py`` does): unpinned, the
ratio swung with where the scheduler put each process (0.85x to 1.24x in
runs of the same trees).

Usage: python bench/many_routes.py [--routes 1000] [--duration-s 6] [--rounds 3]
Needs wrk and redis-server on PATH.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from admission import POST_LUA, missing_tool, run_wrk  # noqa: E402

from shell.local_redis import free_port, start_redis_server, wait_for_port  # noqa: E402


def config(redis_url: str, routes: int, listen: int, admin: int) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url},
        "gateway": {"listen": f"127.0.0.1:{listen}", "admin_listen": f"127.0.0.1:{admin}"},
        "routes": [
            {
                "name": f"svc-{n}",
                "match": {"path_prefix": f"/svc-{n}/api", "methods": ["POST"]},
                "mode": "async",
                "result_ttl_s": 600,
            }
            for n in range(routes)
        ],
    }


def timed_get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        r.read()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--duration-s", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if missing_tool("taskset"):
        return 2
    os.sched_setaffinity(0, {1})  # this process, and what it starts: Redis, wrk
    results: dict[int, list[float]] = {1: [], args.routes: []}
    admin_times: dict[str, list[float]] = {"/status": [], "/metrics": []}
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as name:
        folder = Path(name)
        redis_port = free_port()
        redis = start_redis_server(redis_port, name)
        wait_for_port(redis_port)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        script = folder / "post.lua"
        script.write_text(POST_LUA)
        gateways: dict[int, tuple[subprocess.Popen[bytes], int, int]] = {}
        try:
            for count in results:
                port, admin = free_port(), free_port()
                path = folder / f"tidegate-{count}.yaml"
                path.write_text(yaml.safe_dump(config(redis_url, count, port, admin)))
                cmd = ["taskset", "-c", "0", sys.executable, "-m", "tidegate"]
                cmd += ["--log-level", "WARNING", "gateway"]
                gateways[count] = (subprocess.Popen([*cmd, "-c", str(path)]), port, admin)
            for _, port, _ in gateways.values():
                wait_for_port(port, 30.0)
            time.sleep(1.0)
            for count, (proc, port, _) in gateways.items():  # warm-up
                run_wrk(f"http://127.0.0.1:{port}/svc-{count - 1}/api", script, 2, 64, proc.pid)
            for round_no in range(args.rounds):
                for count, (proc, port, _) in gateways.items():
                    url = f"http://127.0.0.1:{port}/svc-{count - 1}/api"
                    r = run_wrk(url, script, args.duration_s, 64, proc.pid)
                    results[count].append(r["rps"])
                    print(f"round {round_no + 1}: {count:5} route(s): {r['rps']:8.0f} req/s")
            admin = gateways[args.routes][2]
            for page in admin_times:
                for _ in range(5):
                    admin_times[page].append(timed_get(f"http://127.0.0.1:{admin}{page}"))
        finally:
            for proc, _, _ in gateways.values():
                proc.terminate()
            for proc, _, _ in gateways.values():
                proc.wait(10)
            redis.terminate()
            redis.wait(10)
    ratios = [big / one for big, one in zip(results[args.routes], results[1], strict=True)]
    print()
    print(f"wrk -t2 -c64 -d{args.duration_s}s, {args.rounds} rounds, at the last route")
    print("| routes | req/s (median) | ratio to one route |")
    print("|---:|---:|---:|")
    print(f"| 1 | {statistics.median(results[1]):.0f} | 1.00x |")
    print(
        f"| {args.routes} | {statistics.median(results[args.routes]):.0f} | "
        f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
    )
    for page, times in admin_times.items():
        print(f"GET {page} with {args.routes} routes: {statistics.median(times) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
