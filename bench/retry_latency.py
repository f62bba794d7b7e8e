"""How late a retry runs after it is due, on an idle worker.

One ``tidegate worker --app`` process whose handler fails a job's first
attempt and succeeds on the second (``bench/retry_app.py``); the route's
``backoff_base_s`` is 0.01, so each retry is due 5-10 ms after the failure
(the jitter keeps half to all of it). Jobs are admitted one at a time, each
once the previous one has ended, so the worker's read is blocked with
nothing to do when each retry is parked: the case where a retry waits for
something to wake the worker.

Per job, from its events (Redis's clock, millisecond stream ids): the time
from the ``failed`` event to the second ``started`` event. Printed: median,
p90 and max over the jobs, in ms.

``--root DIR`` runs the worker from another checkout (its ``PYTHONPATH``),
so two versions can be compared in the same run.

Usage: python bench/retry_latency.py [--jobs 40] [--root DIR]
Needs redis-server on PATH, or the embedded Valkey of the test extra.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.redis_server import RedisServer  # noqa: E402
from tidegate.envelope import Job  # noqa: E402
from tidegate.keys import GROUP, RouteKeys, new_job_id  # noqa: E402
from tidegate.ledger import Ledger  # noqa: E402
from tidegate.ledger.client import connect  # noqa: E402
from tidegate.ledger.groups import ensure_group  # noqa: E402
from tidegate.settings import Settings, load_settings  # noqa: E402

ROUTE = "retries"


async def measure(settings: Settings, jobs: int) -> list[float]:
    redis = connect(settings.redis)
    ledger = Ledger(redis, settings.routes)
    ledger.open()
    delays_ms: list[float] = []
    try:
        for _ in range(jobs):
            job = Job(id=new_job_id(ROUTE), route=ROUTE, method="POST", path="/x", body=b"{}")
            await ledger.admit(settings.route(ROUTE), job, None)
            for _ in range(3000):  # 30 s at most
                if (await ledger.projection(job.id)).get("state") == "succeeded":
                    break
                await asyncio.sleep(0.01)
            else:
                raise RuntimeError(f"job {job.id} did not succeed within 30 s")
            events = await ledger.events(job.id)
            failed = next(int(e["at_ms"]) for e in events if e["type"] == "failed")
            started = [int(e["at_ms"]) for e in events if e["type"] == "started"]
            delays_ms.append(started[1] - failed)
    finally:
        await ledger.close()
        await redis.aclose()
    return delays_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--root", type=Path, default=HERE.parent)
    args = parser.parse_args()
    with RedisServer() as server, tempfile.TemporaryDirectory() as folder:
        raw = {
            "redis": {"url": server.url},
            "routes": [
                {
                    "name": ROUTE,
                    "match": {"path_prefix": "/x"},
                    "mode": "async",
                    "worker": {"max_attempts": 3, "backoff_base_s": 0.01},
                }
            ],
        }
        path = Path(folder) / "tidegate.yaml"
        path.write_text(yaml.safe_dump(raw))
        settings = load_settings(path)
        asyncio.run(_group(settings))
        env = {**os.environ, "PYTHONPATH": f"{args.root.resolve()}{os.pathsep}{HERE}"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "tidegate", "--log-level", "WARNING", "worker", "-c",
             str(path), "--route", ROUTE, "--app", "retry_app:fail_once"],
            env=env, cwd=args.root.resolve(),
        )  # fmt: skip
        try:
            delays_ms = asyncio.run(measure(settings, args.jobs))
        finally:
            worker.terminate()
            worker.wait(30)
    delays_ms.sort()
    p90 = delays_ms[int(0.9 * (len(delays_ms) - 1))]
    print(f"root {args.root.resolve()}, {len(delays_ms)} jobs, backoff 5-10 ms")
    print(
        f"failed -> second start, ms: median {statistics.median(delays_ms):.0f}, "
        f"p90 {p90:.0f}, max {delays_ms[-1]:.0f}"
    )
    return 0


async def _group(settings: Settings) -> None:
    redis = connect(settings.redis)
    try:
        await ensure_group(redis, RouteKeys(ROUTE).requests, GROUP)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    sys.exit(main())
