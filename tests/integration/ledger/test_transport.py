"""One transport per topology, picked once per client: what each carries."""

from __future__ import annotations

from tests.conftest import make_settings
from tests.integration.topologies.test_sentinel import sentinel_settings
from tests.redis_sentinel import RedisSentinel
from tidegate.keys import RouteKeys
from tidegate.ledger.calls import Sample
from tidegate.ledger.client import connect
from tidegate.ledger.scripts import load_all
from tidegate.ledger.transport import Cluster, OneServer, transport
from tidegate.settings import Settings


async def _sample_through(settings: Settings) -> type:
    """Load the scripts and run one script call through the client's
    transport; the transport's class, asked twice (it is kept)."""
    redis = connect(settings.redis)
    try:
        carrier = transport(redis)
        assert transport(redis) is carrier
        await transport(redis).ready()
        await load_all(redis)
        (raw,) = await carrier.pipeline([Sample(route=RouteKeys("orders"))], None)
        assert not isinstance(raw, Exception), raw
        return type(carrier)
    finally:
        await redis.aclose()


async def test_one_plain_server_goes_over_links(redis_url: str) -> None:
    settings = make_settings(redis_url)
    assert await _sample_through(settings) is OneServer
    redis = connect(settings.redis)
    try:
        link = transport(redis).own_link()
        assert link is not None  # a blocking read or a subscription gets a connection of its own
        assert transport(redis).own_link() is not link
    finally:
        await redis.aclose()


async def test_a_cluster_is_its_own_transport(cluster_settings: Settings) -> None:
    assert await _sample_through(cluster_settings) is Cluster
    redis = connect(cluster_settings.redis)
    try:
        assert transport(redis).own_link() is None  # redis-py keeps a connection per node
    finally:
        await redis.aclose()


async def test_sentinel_is_one_server_through_redis_py_s_pool(
    redis_sentinel: RedisSentinel,
) -> None:
    settings = sentinel_settings(redis_sentinel)
    assert await _sample_through(settings) is OneServer
    redis = connect(settings.redis)
    try:
        assert transport(redis).own_link() is None  # the master is found by asking the sentinels
    finally:
        await redis.aclose()
