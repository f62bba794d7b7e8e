"""Relay throughput of one worker process against a trivial upstream, versus
the raw XREADGROUP + XACK ceiling, same machine, same run.

- ``raw``: one asyncio process reading a preloaded stream in its consumer
  group, COUNT 64 per read, acknowledging each batch with one pipelined XACK:
  what consuming costs with nothing else done (the ceiling);
- ``relay``: ``tidegate worker --upstream`` on the same number of preloaded
  jobs, calling a trivial HTTP service (200, empty body) for each, with the
  start/finish scripts (events, projection, result, acknowledgement).

Both run as their own process on a fresh stream per round; rounds alternate.
The ratio is per round (relay jobs/s over raw entries/s), median over rounds.

Usage: python bench/relay.py [--jobs 5000] [--rounds 3] [--concurrency 32]
Needs redis-server on PATH.
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

import yaml
from redis.asyncio import Redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.worker_processes

from shell.local_redis import free_port, start_redis_server  # noqa: E402
from tests.worker_processes import Workers  # noqa: E402
from tidegate.envelope import Job  # noqa: E402
from tidegate.keys import GROUP, RouteKeys, new_job_id  # noqa: E402
from tidegate.ledger.admission import Admission, admit_call  # noqa: E402
from tidegate.ledger.groups import ensure_group  # noqa: E402
from tidegate.ledger.scripts import run_pipeline  # noqa: E402
from tidegate.settings import parse_settings  # noqa: E402

BODY = b'{"sku": "widget", "quantity": 2, "note": "benchmark order"}'

RAW_CONSUMER = """
import asyncio, sys, time
from redis.asyncio import Redis
async def main(url, stream, total, count):
    r = Redis.from_url(url)
    done, t0 = 0, time.perf_counter()
    while done < total:
        reply = await r.xreadgroup("workers", "raw", {stream: ">"}, count=count, block=1000)
        if not reply:
            continue
        ids = [i for i, _ in reply[0][1]]
        await r.xack(stream, "workers", *ids)
        done += len(ids)
    print(done / (time.perf_counter() - t0))
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


async def preload(redis: Redis, settings: Any, route: str, jobs: int) -> None:
    await ensure_group(redis, RouteKeys(route).requests, GROUP)  # the worker may be first
    batch = []
    for _ in range(jobs):
        job = Job(id=new_job_id(route), route=route, method="POST", path="/orders", body=BODY)
        batch.append(Admission(job, None))
        if len(batch) == 200:
            await run_pipeline(redis, [admit_call(settings.route(route), batch)])
            batch = []
    if batch:
        await run_pipeline(redis, [admit_call(settings.route(route), batch)])


async def drained(redis: Redis, route: str, jobs: int) -> None:
    while True:
        groups: Any = await redis.xinfo_groups(RouteKeys(route).requests)
        if groups and groups[0]["lag"] == 0 and groups[0]["pending"] == 0:
            return
        await asyncio.sleep(0.02)


def raw_ceiling(redis_url: str, jobs: int, count: int) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            RAW_CONSUMER,
            redis_url,
            RouteKeys("raw").requests,
            str(jobs),
            str(count),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


async def one_round(
    redis_url: str, config: Path, settings: Any, upstream: str, jobs: int, concurrency: int, n: int
) -> dict[str, float]:
    redis = Redis.from_url(redis_url)
    await redis.flushall()
    rates: dict[str, float] = {}
    for count in (64, 1):
        await redis.delete(RouteKeys("raw").requests)
        await preload(redis, settings, "raw", jobs)
        rates[f"raw{count}"] = await asyncio.to_thread(raw_ceiling, redis_url, jobs, count)
    # The worker starts first and idles; the clock runs from the admission of
    # the jobs to the last acknowledgement (no interpreter start-up inside).
    workers = Workers(config, "relay", "--upstream", upstream, "--concurrency", str(concurrency))
    await workers.start_one()
    try:
        while not await redis.hlen(RouteKeys("relay").workers):  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        await preload(redis, settings, "relay", jobs)
        await drained(redis, "relay", jobs)
        rates["relay"] = jobs / (time.perf_counter() - t0)
    finally:
        await workers.close()
    await redis.aclose()
    print(
        f"round {n}: raw COUNT 64 {rates['raw64']:8.0f}/s  raw COUNT 1 {rates['raw1']:7.0f}/s  "
        f"relay {rates['relay']:6.0f} jobs/s",
        flush=True,
    )
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as folder:
        redis_port, upstream_port = free_port(), free_port()
        redis_proc = start_redis_server(redis_port, folder)
        upstream_proc = subprocess.Popen(
            [sys.executable, str(HERE / "baselines.py"), "upstream", str(upstream_port)]
        )
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        raw_config = {
            "redis": {"url": redis_url},
            "routes": [
                {"name": name, "match": {"path_prefix": "/" + name}, "mode": "async"}
                for name in ("raw", "relay")
            ],
        }
        config = Path(folder) / "tidegate.yaml"
        config.write_text(yaml.safe_dump(raw_config))
        settings = parse_settings(raw_config, env={})
        time.sleep(1.0)
        try:
            results = [
                asyncio.run(
                    one_round(
                        redis_url,
                        config,
                        settings,
                        f"http://127.0.0.1:{upstream_port}",
                        args.jobs,
                        args.concurrency,
                        n + 1,
                    )
                )
                for n in range(args.rounds)
            ]
        finally:
            upstream_proc.terminate()
            redis_proc.terminate()
            upstream_proc.wait(10)
            redis_proc.wait(10)
    print()
    print(f"{args.jobs} jobs per round, {args.rounds} rounds, relay concurrency {args.concurrency}")
    print("ratio: per round, relay jobs/s over the raw loop's entries/s; median over rounds")
    print("| target | per second (median) | relay ratio to it |")
    print("|---|---:|---:|")
    relay = statistics.median(r["relay"] for r in results)
    for key, label in (
        ("raw64", "raw loop, COUNT 64, one XACK per batch"),
        ("raw1", "raw loop, COUNT 1, one XACK per entry"),
    ):
        ratios = [r["relay"] / r[key] for r in results]
        print(
            f"| {label} | {statistics.median(r[key] for r in results):.0f} | "
            f"{statistics.median(ratios):.3f}x (rounds {min(ratios):.3f}-{max(ratios):.3f}) |"
        )
    print(f"| relay worker (trivial upstream) | {relay:.0f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
