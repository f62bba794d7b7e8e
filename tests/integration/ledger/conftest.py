"""Fixtures of the ledger tests: every test runs against redis-server and fakeredis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest
from redis.asyncio import Redis

from tidegate.ledger import Ledger
from tidegate.settings import Settings


@pytest.fixture(params=["redis-server", "fakeredis"])
async def store(request: pytest.FixtureRequest, redis: Redis) -> AsyncIterator[Redis]:
    if request.param == "redis-server":
        yield redis
        return
    fake = fakeredis.FakeAsyncRedis()
    yield fake
    await fake.aclose()


@pytest.fixture
def book(store: Redis, settings: Settings) -> Ledger:
    return Ledger(store, settings.routes)
