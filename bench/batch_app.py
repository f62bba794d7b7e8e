"""Handlers for bench/batch.py: the same work, one job or many per call.

Each call parses the bodies and, when ``BENCH_CALL_MS`` is set, waits that
long once per call on one of ``BENCH_DB_CONNECTIONS`` (4) connections: a
round trip to a database with a connection pool, which a batch pays once for
all its jobs and a single-job handler once per job.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from tidegate.envelope import Job

CALL_S = float(os.environ.get("BENCH_CALL_MS", "0")) / 1000
CONNECTIONS = asyncio.Semaphore(int(os.environ.get("BENCH_DB_CONNECTIONS", "4")))
"""The database's connections: calls beyond them wait for one."""


async def _call() -> None:
    if CALL_S:
        async with CONNECTIONS:
            await asyncio.sleep(CALL_S)


async def one(job: Job) -> Any:
    await _call()
    return {"quantity": json.loads(job.body)["quantity"]}


async def many(jobs: list[Job]) -> list[Any]:
    await _call()
    return [{"quantity": json.loads(job.body)["quantity"]} for job in jobs]
