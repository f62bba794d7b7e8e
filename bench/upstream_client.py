"""The relay's upstream client against aiohttp's, CPU per call, same run.

One trivial service (``bench/baselines.py upstream``, pinned to core 1) is
called by this process (pinned to core 0) with ``--concurrency`` calls in
flight, each a small JSON POST whose answer is read whole, as the relay
does: once through ``aiohttp.ClientSession`` (a total timeout, no redirects,
no decompression: the relay's former settings), once through
``tidegate.upstream.Upstream``. Rounds alternate the two; the figure is this
process's CPU time (user + system) per call, and the ratio is per round
(tidegate's CPU per call over aiohttp's), median over rounds.

Usage: python bench/upstream_client.py [--calls 6400] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from yarl import URL

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from shell.local_redis import free_port, wait_for_port  # noqa: E402
from tidegate.upstream import Upstream  # noqa: E402

BODY = b'{"sku": "widget", "quantity": 2, "note": "benchmark order"}'
HEADERS = [("Content-Type", "application/json"), ("Idempotency-Key", "job-1")]


async def with_aiohttp(base: str, calls: int, concurrency: int) -> None:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def caller() -> None:
            for _ in range(calls // concurrency):
                async with session.request(
                    "POST",
                    URL(base + "/x", encoded=True),
                    headers=HEADERS,
                    data=BODY,
                    allow_redirects=False,
                    timeout=timeout,
                ) as response:
                    await response.read()

        await asyncio.gather(*(caller() for _ in range(concurrency)))


async def with_tidegate(base: str, calls: int, concurrency: int) -> None:
    upstream = Upstream(base)

    async def caller() -> None:
        for _ in range(calls // concurrency):
            await upstream.request(
                "POST", "/x", HEADERS, BODY, timeout_s=30, max_body_bytes=1 << 20
            )

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    await upstream.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=6400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    port = free_port()
    service = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, str(HERE / "baselines.py"), "upstream", str(port)]
    )
    try:
        wait_for_port(port, 20.0)
        base = f"http://127.0.0.1:{port}"
        clients = {"aiohttp": with_aiohttp, "tidegate": with_tidegate}
        for client in clients.values():  # warm-up
            asyncio.run(client(base, args.concurrency * 20, args.concurrency))
        cpu: dict[str, list[float]] = {name: [] for name in clients}
        for round_no in range(args.rounds):
            for name, client in clients.items():
                started = time.process_time()
                asyncio.run(client(base, args.calls, args.concurrency))
                per_call_us = (time.process_time() - started) / args.calls * 1e6
                cpu[name].append(per_call_us)
                print(f"round {round_no + 1} {name:9} {per_call_us:6.0f} us CPU per call")
    finally:
        service.terminate()
        service.wait(10)
    ratios = [t / a for t, a in zip(cpu["tidegate"], cpu["aiohttp"], strict=True)]
    print()
    print(f"{args.calls} calls x {args.rounds} rounds, {args.concurrency} in flight")
    print("| client | CPU per call (us, median) | ratio to aiohttp |")
    print("|---|---:|---:|")
    print(f"| aiohttp ClientSession | {statistics.median(cpu['aiohttp']):.0f} | 1.00x |")
    print(
        f"| tidegate.upstream | {statistics.median(cpu['tidegate']):.0f} | "
        f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
