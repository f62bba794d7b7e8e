"""Fixtures of the ledger tests: every test runs against redis-server, a Redis
Cluster (the session's, flushed) and fakeredis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest

from tests.redis_cluster import RedisCluster
from tidegate.ledger import Ledger
from tidegate.ledger.client import Connection, connect
from tidegate.settings import RedisSettings, Settings


@pytest.fixture(params=["redis-server", "cluster", "fakeredis"])
async def store(request: pytest.FixtureRequest, redis: Connection) -> AsyncIterator[Connection]:
    if request.param == "redis-server":
        yield redis
        return
    if request.param == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        client = connect(RedisSettings(url=cluster.url, mode="cluster"))
        yield client
        await client.aclose()
        return
    fake = fakeredis.FakeAsyncRedis()
    yield fake
    await fake.aclose()


@pytest.fixture
def book(store: Connection, settings: Settings) -> Ledger:
    return Ledger(store, settings.routes)
