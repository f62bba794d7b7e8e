"""What one job costs Redis: Lua time and memory, on one server and on a cluster.

On a 2-core machine the gateway's Python, not Redis, limits throughput, so
the capacity of Redis is read off what it spends per job instead: the
server-side time of every script call (``INFO commandstats``: ``usec`` of
EVALSHA, summed over every primary) per admitted, started and finished job,
and the memory a finished job holds until its retention ends (``INFO
memory``: ``used_memory`` before and after). Jobs are admitted in batches as
the gateway does (one admit call per batch) and started and finished one
call each as a worker does, through the ledger itself.

Usage: python bench/redis_cost.py [--jobs 5000] [--batch 32]
Needs redis-server (and its cli, for the cluster) on PATH, or the embedded
Valkey of the test extra.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from redis.asyncio.cluster import RedisCluster  # noqa: E402

from tests.redis_cluster import RedisCluster as LocalCluster  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tidegate.envelope import Job, Reply  # noqa: E402
from tidegate.keys import GROUP, RouteKeys, new_job_id  # noqa: E402
from tidegate.ledger import Ledger  # noqa: E402
from tidegate.ledger.client import Connection, connect  # noqa: E402
from tidegate.ledger.groups import ensure_group  # noqa: E402
from tidegate.settings import Settings, parse_settings  # noqa: E402

BODY = b'{"sku": "widget", "quantity": 2, "note": "benchmark order"}'
ROUTES = ("orders", "jobs", "exports")  # one per master of a 3-master cluster


async def _info(redis: Connection, section: str) -> list[dict[str, Any]]:
    """The section of every primary (one, off a cluster)."""
    if isinstance(redis, RedisCluster):
        per_node: Any = await redis.info(section, target_nodes=RedisCluster.PRIMARIES)
        return list(per_node.values())
    info: Any = await redis.info(section)
    return [info]


async def _evalsha_usec(redis: Connection) -> tuple[int, int]:
    calls = usec = 0
    for node in await _info(redis, "commandstats"):
        stat = node.get("cmdstat_evalsha") or {}
        calls += int(stat.get("calls", 0))
        usec += int(stat.get("usec", 0))
    return calls, usec


async def _used_memory(redis: Connection) -> int:
    return sum(int(node["used_memory"]) for node in await _info(redis, "memory"))


async def measure(settings: Settings, jobs: int, batch: int) -> dict[str, float]:
    redis = connect(settings.redis)
    ledger = Ledger(redis, settings.routes, admission_batch_max=batch)
    ledger.open()
    try:
        for route in ROUTES:
            await ensure_group(redis, RouteKeys(route).requests, GROUP)
        memory_before = await _used_memory(redis)
        calls0, usec0 = await _evalsha_usec(redis)
        per_route = jobs // len(ROUTES)
        admitted: list[Job] = []
        for route in ROUTES:
            for start in range(0, per_route, batch):
                chunk = [
                    Job(id=new_job_id(route), route=route, method="POST", path="/x", body=BODY)
                    for _ in range(min(batch, per_route - start))
                ]
                await asyncio.gather(*(ledger.admit(settings.route(route), job) for job in chunk))
                admitted += chunk
        calls1, usec1 = await _evalsha_usec(redis)
        for route in ROUTES:
            stream = RouteKeys(route).requests
            while True:
                reply: Any = await redis.xreadgroup(GROUP, "bench", {stream: ">"}, count=500)
                if not reply:
                    break
                for entry_id, fields in reply[0][1]:
                    job = Job.from_fields(route, fields)
                    started = await ledger.start(job, entry_id.decode(), "bench")
                    assert started is not None
                    await ledger.finish(started, entry_id.decode(), Reply(200, (), b'{"ok":1}'))
        _, usec2 = await _evalsha_usec(redis)
        memory_after = await _used_memory(redis)
        n = len(admitted)
        return {
            "jobs": n,
            "admit_calls": calls1 - calls0,
            "admit_us_per_job": (usec1 - usec0) / n,
            "start_finish_us_per_job": (usec2 - usec1) / n,
            "bytes_per_finished_job": (memory_after - memory_before) / n,
        }
    finally:
        await ledger.close()
        await redis.aclose()


def settings_for(url: str, mode: str) -> Settings:
    routes = [
        {"name": name, "match": {"path_prefix": "/" + name}, "mode": "async"} for name in ROUTES
    ]
    return parse_settings({"redis": {"url": url, "mode": mode}, "routes": routes}, env={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    rows = []
    targets: list[tuple[str, str, RedisServer | LocalCluster]] = [
        ("one server", "standalone", RedisServer()),
        ("cluster, 3 masters", "cluster", LocalCluster()),
    ]
    for name, mode, target in targets:
        target.start()
        try:
            settings = settings_for(target.url, mode)
            rows.append((name, asyncio.run(measure(settings, args.jobs, args.batch))))
        finally:
            target.close()
    print(f"{args.jobs} jobs over {len(ROUTES)} routes, admitted in batches of {args.batch}")
    print("| Redis | admit Lua us/job | start+finish Lua us/job | Lua us/job | bytes/job held |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows:
        total = r["admit_us_per_job"] + r["start_finish_us_per_job"]
        print(
            f"| {name} | {r['admit_us_per_job']:.1f} | {r['start_finish_us_per_job']:.1f} | "
            f"{total:.1f} | {r['bytes_per_finished_job']:.0f} |"
        )


if __name__ == "__main__":
    main()
