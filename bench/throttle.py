"""The front-door throttle: accuracy across gateways, fairness, overhead.

- **accuracy**: 4 ``tidegate gateway`` processes on one route throttled at
  ``--rate`` (admissions/s, burst = 2 s of it), offered 3x that rate for
  ``--duration-s``, spread evenly over the 4 gateways. Admitted requests are
  counted in the route's stream (the ground truth) and compared with
  ``rate x T + burst``, T being the time from the first to the last request.
  The route's priority class is ``high`` here (no reserve left for a higher
  class), so the bucket's own accounting is what is measured.
- **fairness**: the same route and rate with 4 tenants of equal weight
  offering 0.6x, 1.2x, 2.4x and 4.8x of a fair share (the rate / 4); Jain's
  index over the tenants' admitted rates (1.0: equal shares).
- **overhead**: ``wrk`` against one gateway, without a throttle and with a
  throttle set far above the offered load (not binding), rounds alternating;
  the ratio of throughputs per round.

With ``--partitions P`` the route is split over P partitions (one bucket
each at rate / P, ``tidegate.throttle.share_of``) and the admitted count is
the sum of the P streams.

Usage: python bench/throttle.py [--rate 100] [--duration-s 20] [--rounds 3]
       [--partitions 1] [--skip-overhead]
Needs redis-server and wrk on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from admission import POST_LUA, run_wrk

from shell.local_redis import free_port, start_redis_server, wait_for_port
from tidegate.keys import Layout, parts_of
from tidegate.ledger import throttle_record
from tidegate.throttle import Throttle

TENANTS = ("t1", "t2", "t3", "t4")
BENCH = Layout("bench")
"""The bench route (``--partitions`` changes its partitions)."""
OFFER_OF_SHARE = (0.6, 1.2, 2.4, 4.8)


def key_of(tenant: str) -> str:
    return f"bench-key-{tenant}"


def config(redis_url: str, tenants: bool) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "redis": {"url": redis_url},
        "routes": [
            {
                "name": "bench",
                "match": {"path_prefix": "/", "methods": ["POST"]},
                "mode": "async",
                "priority": "high",
                "result_ttl_s": 600,
                "partitions": BENCH.partitions,
            }
        ],
    }
    if tenants:
        raw["tenants"] = [
            {"name": t, "api_key_sha256": hashlib.sha256(key_of(t).encode()).hexdigest()}
            for t in TENANTS
        ]
    return raw


def start_gateways(folder: Path, raw: dict[str, Any], n: int) -> list[tuple[Any, int]]:
    path = folder / f"tidegate-{len(raw)}-{n}-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = []
    for _ in range(n):
        port = free_port()
        env = {
            **os.environ,
            "TIDEGATE_GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "TIDEGATE_GATEWAY_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
        }
        cmd = [sys.executable, "-m", "tidegate", "--log-level", "WARNING", "gateway"]
        proc = subprocess.Popen([*cmd, "-c", str(path)], env=env)
        out.append((proc, port))
    for _, port in out:
        wait_for_port(port, 20.0)
    return out


async def offer(
    urls: list[str], rate_per_s: float, duration_s: float, headers: dict[str, str] | None = None
) -> tuple[Counter[int], float, float]:
    """Send at ``rate_per_s`` for ``duration_s``, round-robin over ``urls``."""
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(url: str) -> None:
            try:
                async with http.post(url, data=b'{"bench": 1}', headers=headers) as r:
                    await r.read()
                    statuses[r.status] += 1
            except aiohttp.ClientError:
                statuses[0] += 1

        tasks = []
        start = time.monotonic()
        n = int(rate_per_s * duration_s)
        for i in range(n):
            due = start + i / rate_per_s
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(urls[i % len(urls)])))
        last = time.monotonic()
        await asyncio.gather(*tasks)
    return statuses, start, last


async def accuracy(redis: Redis, urls: list[str], rate: float, duration_s: float) -> None:
    burst = int(rate * 2)
    await redis.delete(*(keys.requests for keys in parts_of(BENCH)))
    state = Throttle(rate, burst, "max_replicas", "benchmark", time.time(), 429)
    await throttle_record.Throttles(redis).apply(BENCH, state, ttl_s=3600, announce=True)
    statuses, start, last = await offer(urls, rate * 3, duration_s)
    admitted = sum([int(await redis.xlen(keys.requests)) for keys in parts_of(BENCH)])
    expected = rate * (last - start) + burst
    print(
        f"accuracy: offered {sum(statuses.values())} over {last - start:.2f} s "
        f"to {len(urls)} gateways at 3x {rate:g}/s, {BENCH.partitions} partition(s): "
        f"answers {dict(statuses)}"
    )
    print(
        f"  admitted (stream length) {admitted}, expected rate x T + burst = {expected:.0f}: "
        f"{(admitted - expected) / expected * 100:+.2f}% (target within +-2%)"
    )
    await throttle_record.Throttles(redis).lift(BENCH)


async def fairness(redis: Redis, urls: list[str], rate: float, duration_s: float) -> None:
    state = Throttle(rate, int(rate * 2), "max_replicas", "benchmark", time.time(), 429)
    await throttle_record.Throttles(redis).apply(BENCH, state, ttl_s=3600, announce=True)
    share = rate / len(TENANTS)
    runs = [
        offer(urls, share * k, duration_s, {"X-Api-Key": key_of(t)})
        for t, k in zip(TENANTS, OFFER_OF_SHARE, strict=True)
    ]
    results = await asyncio.gather(*runs)
    admitted = [r[0][202] / duration_s for r in results]
    jain = sum(admitted) ** 2 / (len(admitted) * sum(a * a for a in admitted))
    fair = [min(share * k, share) for k in OFFER_OF_SHARE]  # max-min fair shares
    fair_jain_input = [a / f for a, f in zip(admitted, fair, strict=True)]
    jain_norm = sum(fair_jain_input) ** 2 / (
        len(fair_jain_input) * sum(x * x for x in fair_jain_input)
    )
    print(f"fairness: rate {rate:g}/s, fair share {share:g}/s per tenant")
    for t, k, a in zip(TENANTS, OFFER_OF_SHARE, admitted, strict=True):
        print(f"  {t}: offered {share * k:6.1f}/s admitted {a:6.1f}/s")
    print(
        f"  Jain's index over admitted rates {jain:.3f}; over admitted / max-min fair share "
        f"{jain_norm:.3f} (target >= 0.95)"
    )
    await throttle_record.Throttles(redis).lift(BENCH)


def set_state(redis_url: str, state: Throttle | None) -> None:
    """Set (or lift, with None) the bench route's throttle, from outside a loop."""

    async def go() -> None:
        redis = Redis.from_url(redis_url)
        try:
            if state is None:
                await throttle_record.Throttles(redis).lift(BENCH)
            else:
                await throttle_record.Throttles(redis).apply(
                    BENCH, state, ttl_s=3600, announce=True
                )
        finally:
            await redis.aclose()

    asyncio.run(go())


def overhead(folder: Path, redis_url: str, rounds: int, duration_s: int) -> None:
    ((proc, port),) = start_gateways(folder, config(redis_url, tenants=False), 1)
    script = folder / "post.lua"
    script.write_text(POST_LUA)
    url = f"http://127.0.0.1:{port}/bench"
    loose = Throttle(1e6, 10**6, "max_replicas", "benchmark", time.time(), 429)
    ratios = []
    try:
        run_wrk(url, script, 2, 64, proc.pid)  # warm-up
        for round_no in range(rounds):
            set_state(redis_url, None)
            free = run_wrk(url, script, duration_s, 64, proc.pid)
            set_state(redis_url, loose)
            bound = run_wrk(url, script, duration_s, 64, proc.pid)
            ratios.append(bound["rps"] / free["rps"])
            print(
                f"overhead round {round_no + 1}: unthrottled {free['rps']:.0f} req/s, "
                f"throttle set not binding {bound['rps']:.0f} req/s: {ratios[-1]:.2f}x"
            )
        print(
            f"  median {statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-"
            f"{max(ratios):.2f}; target >= 0.9x)"
        )
    finally:
        set_state(redis_url, None)
        proc.terminate()
        proc.wait(10)


Measure = Callable[[Redis, list[str], float, float], Awaitable[None]]


def run_phase(
    folder: Path, redis_url: str, tenants: bool, measure: Measure, rate: float, duration_s: float
) -> None:
    """Four gateways on a fresh config, one measurement against them, then stop them."""
    gateways = start_gateways(folder, config(redis_url, tenants=tenants), 4)
    try:
        urls = [f"http://127.0.0.1:{p}/bench" for _, p in gateways]
        time.sleep(1.0)

        async def run() -> None:
            redis = Redis.from_url(redis_url)
            try:
                await measure(redis, urls, rate, duration_s)
            finally:
                await redis.aclose()

        asyncio.run(run())
    finally:
        for proc, _ in gateways:
            proc.terminate()
            proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration-s", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--overhead-duration-s", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    global BENCH
    BENCH = Layout("bench", args.partitions)
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as name:
        folder = Path(name)
        port = free_port()
        server = start_redis_server(port, folder)
        wait_for_port(port)
        redis_url = f"redis://127.0.0.1:{port}/0"
        try:
            for tenants, measure in ((False, accuracy), (True, fairness)):
                run_phase(folder, redis_url, tenants, measure, args.rate, args.duration_s)
            if not args.skip_overhead:
                overhead(folder, redis_url, args.rounds, args.overhead_duration_s)
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
