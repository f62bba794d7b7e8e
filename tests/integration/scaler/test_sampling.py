"""Sampling a route from a real redis-server."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from scaler.sampling import sample_route
from tests.conftest import on_both
from tests.redis_server import RedisServer
from tidegate.envelope import Job, Reply
from tidegate.keys import GROUP, RouteKeys, new_job_id
from tidegate.ledger import Ledger
from tidegate.ledger.groups import ensure_group
from tidegate.ledger.store import Store
from tidegate.settings import Settings


async def test_sample_counts_added_waiting_pending_completed(
    redis: Redis, ledger: Ledger, settings: Settings
) -> None:
    empty = await sample_route(
        Store(redis), "orders", now_s=1.0, ready_replicas=0, current_replicas=0
    )
    assert (empty.waiting, empty.added_total, empty.completed_total) == (0, 0, 0)
    for i in range(10):
        job = Job(id=new_job_id("orders"), route="orders", method="POST", path="/o", body=b"%d" % i)
        await ledger.admit(settings.route("orders"), job, None)
    stream = RouteKeys("orders").requests
    await ensure_group(redis, stream, GROUP)
    read: Any = await redis.xreadgroup(GROUP, "c1", {stream: ">"}, count=5)
    for n, (entry_id, fields) in enumerate(read[0][1]):
        started = await ledger.start(Job.from_fields("orders", fields), entry_id.decode(), "c1")
        assert started is not None
        if n < 4:
            await ledger.finish(started, entry_id.decode(), Reply(200))
    sample = await sample_route(
        Store(redis), "orders", now_s=2.0, ready_replicas=1, current_replicas=1
    )
    assert (sample.added_total, sample.waiting, sample.pending, sample.completed_total) == (
        10,
        5,
        1,
        4,
    )
    await ledger.trim("orders")  # trimming does not lower the counters
    again = await sample_route(
        Store(redis), "orders", now_s=3.0, ready_replicas=1, current_replicas=1
    )
    assert (again.added_total, again.completed_total) == (10, 4)


async def test_redis_down_is_an_unknown_backlog(own_redis: RedisServer) -> None:
    client = Redis.from_url(own_redis.url, socket_connect_timeout=0.5)
    own_redis.stop()
    sample = await sample_route(
        Store(client), "orders", now_s=1.0, ready_replicas=2, current_replicas=2
    )
    await client.aclose()
    assert sample.waiting is None
    assert sample.current_replicas == 2


@pytest.fixture(params=["standalone", "cluster"])
def settings(request: pytest.FixtureRequest, redis_url: str) -> Settings:
    """Sampling on one server and on the session's Redis Cluster."""
    return on_both(request, redis_url)
