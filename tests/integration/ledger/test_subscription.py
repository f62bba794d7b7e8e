"""A subscription that stays subscribed (``pubsub.Subscription``), on
redis-server: on a link of its own (a client of ``client.connect``) and
through redis-py's pub/sub (any other client), the same behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import wait_until
from tests.redis_server import RedisServer
from tidegate.errors import RedisUnavailable
from tidegate.ledger.client import Connection, LinkedRedis, connect
from tidegate.ledger.pubsub import Subscription
from tidegate.settings import RedisSettings

pytestmark = pytest.mark.both_loops

CHANNELS = ["{orders}:done", "{reports}:done"]


def client_of(kind: str, url: str) -> Connection:
    """A client whose subscriptions take a link (``link``), or one that has none."""
    made: Connection = connect(RedisSettings(url=url)) if kind == "link" else Redis.from_url(url)
    assert isinstance(made, LinkedRedis) == (kind == "link")
    return made


@pytest.fixture(params=["link", "pubsub"])
async def client(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Connection]:
    made = client_of(request.param, redis_url)
    yield made
    await made.aclose()


class Recorder:
    """What a subscription called, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = 0
        self.idle = 0
        self.fail_next: BaseException | None = None

    def on_message(self, channel: str, data: bytes) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.messages.append((channel, data))

    async def on_subscribed(self) -> None:
        self.subscribed += 1

    async def on_idle(self) -> None:
        self.idle += 1


async def started(subscription: Subscription) -> Subscription:
    subscription.start()
    await asyncio.wait_for(subscription.subscribed.wait(), 10)
    return subscription


async def publish(redis_url: str, channel: str, data: bytes) -> None:
    publisher = Redis.from_url(redis_url)
    try:
        assert await publisher.spublish(channel, data) == 1
    finally:
        await publisher.aclose()


async def test_messages_arrive_in_order_after_the_catch_up(
    client: Connection, redis_url: str
) -> None:
    seen = Recorder()
    subscription = await started(
        Subscription(client, CHANNELS, on_message=seen.on_message, on_subscribed=seen.on_subscribed)
    )
    sent = [(CHANNELS[i % 2], f"job-{i}\nbody \xff".encode("latin-1")) for i in range(20)]
    for channel, data in sent:
        await publish(redis_url, channel, data)
    await wait_until(lambda: len(seen.messages) == len(sent), what="every message")
    assert seen.messages == sent
    assert seen.subscribed == 1
    await subscription.close()


async def test_an_awaitable_handler_is_awaited_in_order(client: Connection, redis_url: str) -> None:
    handled: list[bytes] = []

    async def slow(data: bytes) -> None:
        await asyncio.sleep(0)  # a handler that reads Redis, say
        handled.append(data)

    def on_message(_channel: str, data: bytes) -> Awaitable[None]:
        return slow(data)

    seen = Recorder()
    subscription = await started(
        Subscription(client, CHANNELS, on_message=on_message, on_subscribed=seen.on_subscribed)
    )
    for i in range(10):
        await publish(redis_url, CHANNELS[0], b"%d" % i)
    await wait_until(lambda: len(handled) == 10, what="every handler to run")
    assert handled == [b"%d" % i for i in range(10)]
    await subscription.close()


@pytest.mark.parametrize(
    ("error", "starts_over"),
    [(RedisUnavailable("the read failed"), True), (ValueError("a handler's bug"), False)],
    ids=["redis-unavailable", "other-error"],
)
async def test_a_failing_handler_starts_over_only_when_redis_failed(
    client: Connection, redis_url: str, error: BaseException, starts_over: bool
) -> None:
    seen = Recorder()
    subscription = await started(
        Subscription(client, CHANNELS, on_message=seen.on_message, on_subscribed=seen.on_subscribed)
    )
    seen.fail_next = error
    await publish(redis_url, CHANNELS[0], b"first")
    if starts_over:  # subscribed and caught up again
        await wait_until(lambda: seen.subscribed == 2, what="a new subscription")
    await publish(redis_url, CHANNELS[0], b"second")
    await wait_until(lambda: bool(seen.messages), what="the next message")
    assert seen.messages == [(CHANNELS[0], b"second")]
    assert seen.subscribed == (2 if starts_over else 1)
    assert subscription._task is not None
    assert not subscription._task.done()  # the subscription goes on
    await subscription.close()


async def test_quiet_channels_run_the_idle_callback(client: Connection) -> None:
    seen = Recorder()
    subscription = await started(
        Subscription(
            client,
            CHANNELS,
            on_message=seen.on_message,
            on_subscribed=seen.on_subscribed,
            on_idle=seen.on_idle,
            idle_s=0.05,
        )
    )
    await wait_until(lambda: seen.idle >= 2, what="the idle callback, twice")
    await subscription.close()


@pytest.mark.parametrize("kind", ["link", "pubsub"])
async def test_after_redis_restarts_it_subscribes_and_catches_up_again(
    own_redis: RedisServer, kind: str
) -> None:
    client = client_of(kind, own_redis.url)
    seen = Recorder()
    subscription = await started(
        Subscription(client, CHANNELS, on_message=seen.on_message, on_subscribed=seen.on_subscribed)
    )
    own_redis.stop()
    await wait_until(lambda: not subscription.subscribed.is_set(), what="the loss")
    own_redis.start()
    await asyncio.wait_for(subscription.subscribed.wait(), 10)
    assert seen.subscribed == 2
    await publish(own_redis.url, CHANNELS[1], b"after")
    await wait_until(lambda: bool(seen.messages), what="a message after the restart")
    assert seen.messages == [(CHANNELS[1], b"after")]
    await subscription.close()
    await client.aclose()


async def test_on_a_client_with_links_it_takes_a_link_of_its_own_and_closing_ends_it(
    redis_url: str,
) -> None:
    client = connect(RedisSettings(url=redis_url))
    assert isinstance(client, LinkedRedis)
    seen = Recorder()
    subscription = await started(
        Subscription(client, CHANNELS, on_message=seen.on_message, on_subscribed=seen.on_subscribed)
    )
    pool: Any = client.connection_pool
    assert not pool._available_connections  # no connection of redis-py's pool: a link
    assert not pool._in_use_connections
    observer = Redis.from_url(redis_url)
    assert await observer.pubsub_shardnumsub(*CHANNELS) == [(c.encode(), 1) for c in CHANNELS]
    await subscription.close()
    await wait_until(
        lambda: _numsub_zero(observer), what="the subscription's connection to go away"
    )
    await observer.aclose()
    await client.aclose()


async def _numsub_zero(observer: Redis) -> bool:
    counts: Any = await observer.pubsub_shardnumsub(*CHANNELS)
    return all(int(n) == 0 for _, n in counts)
