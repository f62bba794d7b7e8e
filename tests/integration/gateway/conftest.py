"""Fixtures of the gateway tests: an upstream that records every request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import on_both
from tests.integration.gateway.hostile import Capture, Seen
from tidegate.settings import Settings


@pytest.fixture
async def capture() -> AsyncIterator[Capture]:
    app = web.Application()
    holder: list[Capture] = []

    async def record(request: web.Request) -> web.Response:
        seen = Seen(
            request.method,
            request.rel_url.raw_path,
            request.rel_url.raw_query_string,
            list(request.headers.items()),
            await request.read(),
        )
        holder[0].seen.append(seen)
        status = 500 if seen.raw_path.startswith("/fail") else 200
        return web.json_response({"path": seen.raw_path}, status=status)

    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(Capture(server))
    yield holder[0]
    await server.close()


@pytest.fixture(params=["standalone", "cluster"])
def settings(request: pytest.FixtureRequest, redis_url: str) -> Settings:
    """The gateway's tests on one server and on the session's Redis Cluster."""
    return on_both(request, redis_url)
