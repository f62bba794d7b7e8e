"""One script call's client cost: redis-py's pool against the shared link, same run.

Every job costs script calls (admission, start, finish) and the scaler makes
one per route per tick; this is what each costs the calling process. A
redis-server is started here; the same call (``sample.lua`` on an empty
route) goes ``--calls`` times through ``Runner`` on two clients: a plain
redis-py ``Redis`` (pool checkout, write, read under a timeout, check-in)
and a client from ``tidegate.ledger.client.connect``, whose script calls
take one shared connection (``tidegate.ledger.link``). Sequential calls
(one waiting at a time, as a lone request's), then ``--concurrent`` callers
at once through a batched runner (as a busy worker's). Then a worker's
read (``ConsumerGroup.read``, XREADGROUP ... BLOCK) of one entry added just
before, through redis-py and through the read's own link; only the read is
timed. Rounds interleave the modes; printed per mode: median CPU and wall
time per call, in us, and the ratio link / pool.

Usage: python bench/script_calls.py [--calls 3000] [--concurrent 32] [--rounds 3]
Needs redis-server on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from tests.redis_server import RedisServer
from tidegate.keys import RouteKeys
from tidegate.ledger.calls import Sample
from tidegate.ledger.client import Connection, connect
from tidegate.ledger.groups import ConsumerGroup
from tidegate.ledger.runner import Runner
from tidegate.settings import RedisSettings


async def timed(redis: Connection, calls: int, concurrent: int) -> tuple[float, float]:
    """CPU and wall time per call, in us."""
    runner = Runner(redis, batched=concurrent > 1)
    runner.start()
    call = Sample(route=RouteKeys("bench"))
    await runner.run(call)  # connected, script loaded

    async def caller(n: int) -> None:
        for _ in range(n):
            await runner.run(call)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(calls // concurrent) for _ in range(concurrent)))
    done = calls // concurrent * concurrent
    result = ((time.process_time() - cpu) / done * 1e6, (time.perf_counter() - wall) / done * 1e6)
    await runner.close()
    return result


async def reads(redis: Connection, calls: int, stream: str) -> tuple[float, float]:
    """CPU and wall time per read of one waiting entry, in us."""
    group = ConsumerGroup(redis, stream, "bench", "c1")
    await group.ensure()
    cpu_s = wall_s = 0.0
    for _ in range(calls):
        await redis.xadd(stream, {"job": "j"})
        wall, cpu = time.perf_counter(), time.process_time()
        got = await group.read(1, 1000)
        cpu_s += time.process_time() - cpu
        wall_s += time.perf_counter() - wall
        assert len(got) == 1
    await redis.delete(stream)
    return cpu_s / calls * 1e6, wall_s / calls * 1e6


async def measure(
    url: str, args: argparse.Namespace
) -> dict[tuple[str, int], list[tuple[float, float]]]:
    clients = {"pool": Redis.from_url(url), "link": connect(RedisSettings(url=url))}
    out: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for concurrent in (1, args.concurrent):
            for mode, client in clients.items():
                out.setdefault((mode, concurrent), []).append(
                    await timed(client, args.calls, concurrent)
                )
        for mode, client in clients.items():
            out.setdefault((mode, 0), []).append(await reads(client, args.calls, f"bench-{mode}"))
    for client in clients.values():
        await client.aclose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrent", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with RedisServer() as server:
        results = asyncio.run(measure(server.url, args))
    print(
        "| callers | pool CPU/call (us) | link CPU/call (us) | CPU link/pool "
        "| pool wall (us) | link wall (us) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for concurrent in (1, args.concurrent, 0):
        pool, link = results[("pool", concurrent)], results[("link", concurrent)]
        ratios = [lc / pc for (lc, _), (pc, _) in zip(link, pool, strict=True)]
        cpu = [statistics.median(c for c, _ in rows) for rows in (pool, link)]
        wall = [statistics.median(w for _, w in rows) for rows in (pool, link)]
        label = concurrent or "1, XREADGROUP"
        print(
            f"| {label} | {cpu[0]:.0f} | {cpu[1]:.0f} | {statistics.median(ratios):.2f}x "
            f"| {wall[0]:.0f} | {wall[1]:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
