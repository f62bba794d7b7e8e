"""A batch handler against the single-job handler, same work, same run.

A preloaded backlog (``--jobs``, default 5000) drained by one ``tidegate
worker --app`` process, per round: once with ``batch_app:one`` (one job per
call, ``--concurrency 128``), once with ``batch_app:many --batch-size 64``
(which runs 128 jobs at once too).
The work is trivial (parse the body, answer a dict), so what is measured is
what tidegate does around it; ``--call-ms`` adds a wait once per call on
one of 4 connections (a database round trip through a pool: once per batch,
or once per job). Each job still has its own start and finish
script call (events, projection, result, acknowledgement); the batch worker
saves the per-call overhead of the handler and lets those calls share round
trips. The ratio is per round (batch jobs/s over single jobs/s), median over
rounds.

Usage: python bench/batch.py [--jobs 5000] [--rounds 3] [--batch-size 64] [--call-ms 0]
Needs redis-server on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from redis.asyncio import Redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from relay import drained, preload  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402
from tidegate.keys import RouteKeys  # noqa: E402
from tidegate.settings import parse_settings  # noqa: E402

ROUTE = "bulk"


async def drain(
    redis_url: str, config: Path, settings: object, jobs: int, app: list[str], call_ms: float
) -> float:
    redis = Redis.from_url(redis_url)
    await redis.flushall()
    path = str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": path, "BENCH_CALL_MS": str(call_ms)}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tidegate", "--log-level", "WARNING", "worker",
        "-c", str(config), "--route", ROUTE, *app, env=env,
    )  # fmt: skip
    try:
        while not await redis.hlen(RouteKeys(ROUTE).workers):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        await preload(redis, settings, ROUTE, jobs)
        await drained(redis, ROUTE, jobs)
        return jobs / (time.perf_counter() - t0)
    finally:
        worker.terminate()
        await worker.wait()
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--call-ms", type=float, default=0.0, help="wait once per handler call")
    args = parser.parse_args()
    n = str(args.batch_size)
    # The batch worker runs 2N jobs at once (one batch running while the next
    # forms); the single-job worker gets the same.
    single = ["--app", "batch_app:one", "--concurrency", str(2 * args.batch_size)]
    batched = ["--app", "batch_app:many", "--batch-size", n, "--batch-wait-ms", "20"]
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as folder, RedisServer() as server:
        url = server.url
        raw = {
            "redis": {"url": url},
            "routes": [
                {
                    "name": ROUTE,
                    "match": {"path_prefix": "/bulk"},
                    "mode": "async",
                    "result_ttl_s": 600,
                }
            ],
        }
        config = Path(folder) / "tidegate.yaml"
        config.write_text(yaml.safe_dump(raw))
        settings = parse_settings(raw, env={})
        time.sleep(0.5)
        ratios: list[float] = []
        rates: dict[str, list[float]] = {"single": [], "batch": []}
        for round_no in range(1, args.rounds + 1):
            one = asyncio.run(drain(url, config, settings, args.jobs, single, args.call_ms))
            many = asyncio.run(drain(url, config, settings, args.jobs, batched, args.call_ms))
            rates["single"].append(one)
            rates["batch"].append(many)
            ratios.append(many / one)
            print(
                f"round {round_no}: single {one:7.0f} jobs/s  batch of {n} {many:7.0f} jobs/s",
                flush=True,
            )
    print()
    print(
        f"{args.jobs} jobs per drain, {args.rounds} rounds, batch size {n}, "
        f"{args.call_ms:g} ms waited per call"
    )
    print("| handler | jobs/s (median) | ratio to single |")
    print("|---|---:|---:|")
    single_rate = statistics.median(rates["single"])
    print(f"| single job per call, concurrency {2 * args.batch_size} | {single_rate:.0f} | 1.00x |")
    print(
        f"| batch of up to {n} | {statistics.median(rates['batch']):.0f} | "
        f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
