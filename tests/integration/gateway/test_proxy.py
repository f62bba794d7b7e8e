"""Proxy routes: streamed both ways, a dead upstream answered with 502."""

from __future__ import annotations

import pytest

from tests.conftest import RunningGateway, Upstream, make_settings, running_gateway
from tests.integration.gateway.problems import (
    problem_of,
)
from tidegate.keys import RouteKeys

pytestmark = pytest.mark.both_loops
"""Protocols of our own on sockets: run on asyncio's loop and on uvloop's."""


async def test_proxy_route_streams_both_ways(redis_url: str, upstream: Upstream) -> None:
    settings = make_settings(redis_url)
    reads = settings.route("reads")
    routes = tuple(
        r if r.name != "reads" else reads.__class__(**{**reads.__dict__, "upstream": upstream.url})
        for r in settings.routes
    )
    settings = settings.__class__(redis=settings.redis, gateway=settings.gateway, routes=routes)
    upstream.state.orders[1] = {"id": 1, "kind": "order"}
    async with running_gateway(settings) as gateway:
        async with gateway.http.get(gateway.url("/orders/1")) as r:
            assert r.status == 200
            assert (await r.json())["id"] == 1
        async with gateway.http.get(gateway.url("/orders/99")) as r:
            assert r.status == 404  # the upstream's own 404, passed through
            assert r.content_type == "application/json"
        assert await gateway.gw.ledger._redis.exists(RouteKeys("reads").requests) == 0  # no queue


async def test_proxy_to_a_dead_upstream_is_502(gateway: RunningGateway) -> None:
    async with gateway.http.get(gateway.url("/orders/1")) as r:
        assert r.status == 502
        await problem_of(r)
