"""What the ledger tests share: a job, and taking the next entry as a worker would."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis

from tidegate.envelope import Job
from tidegate.keys import GROUP, RouteKeys, new_job_id
from tidegate.ledger.groups import ensure_group


def new_job(body: bytes = b"payload", route: str = "orders") -> Job:
    return Job(id=new_job_id(route), route=route, method="POST", path="/" + route, body=body)


async def take(store: Redis, route: str = "orders") -> tuple[str, Job]:
    """Read the next entry as a worker would."""
    stream = RouteKeys(route).requests
    await ensure_group(store, stream, GROUP)
    reply: Any = await store.xreadgroup(GROUP, "c1", {stream: ">"}, count=1)
    entry_id, fields = reply[0][1][0]
    return entry_id.decode(), Job.from_fields(route, fields)


def needs_real_redis(store: Redis, why: str) -> None:
    """Skip the fakeredis variant of a test that fakeredis cannot serve."""
    if isinstance(store, fakeredis.FakeAsyncRedis):
        pytest.skip(f"fakeredis: {why}")
