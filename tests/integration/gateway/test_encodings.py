"""Compressed request bodies reach the service as sent, and lies are refused.

Each body, on a proxy route (small and read whole; large and streamed,
chunked or with a length) and on a queued route (the stored envelope the
worker sends on): the service (which decodes nothing) receives exactly the
client's bytes with the client's ``Content-Encoding``. A body that is not
what its header says is a 400 that reaches no service and admits nothing; a
small body that inflates past ``max_body_bytes`` is a 413.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from tests.conftest import RunningGateway, running_gateway
from tidegate.envelope import Job
from tidegate.keys import RouteKeys
from tidegate.settings import parse_settings

pytestmark = pytest.mark.both_loops

LIMIT_BYTES = 256 * 1024
TEXT = b'{"order": "two widgets", "note": "' + b"abc" * 300 + b'"}'
LARGE_TEXT = bytes(range(256)) * 600  # about 150 KiB: streams on a proxy route


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


GOOD = [
    pytest.param("gzip", gzip.compress(TEXT), id="gzip"),
    pytest.param("x-gzip", gzip.compress(TEXT), id="x-gzip"),
    pytest.param("deflate", zlib.compress(TEXT), id="deflate-zlib"),
    pytest.param("deflate", raw_deflate(TEXT), id="deflate-raw"),
    pytest.param("gzip, gzip", gzip.compress(gzip.compress(TEXT)), id="gzip-twice"),
    pytest.param("GZIP", gzip.compress(TEXT), id="upper-case"),
    pytest.param("identity", TEXT, id="identity"),
    pytest.param("br", b"\x8b\x03\x80not checked", id="br-unchecked"),
    pytest.param("gzip", gzip.compress(LARGE_TEXT), id="gzip-large"),
]

BAD = [
    pytest.param("gzip", TEXT, id="plain-labelled-gzip"),
    pytest.param("gzip", gzip.compress(TEXT)[:-9], id="gzip-cut-short"),
    pytest.param("gzip", gzip.compress(TEXT) + b"trailing", id="gzip-trailing-bytes"),
    pytest.param("deflate", b"\x78\x9c" + b"\xff" * 40, id="deflate-garbage"),
    pytest.param("gzip, gzip", gzip.compress(TEXT), id="gzip-twice-but-once"),
    pytest.param("gzip", b"\x1f\x8b" + bytes(400), id="gzip-magic-then-zeros"),
    pytest.param("gzip", gzip.compress(LARGE_TEXT)[:-20], id="large-gzip-cut-short"),
]

BOMB = gzip.compress(bytes(4 * LIMIT_BYTES))  # about 1 KiB that inflates to 1 MiB


class Received:
    def __init__(self) -> None:
        self.requests: list[tuple[str | None, bytes]] = []


@pytest.fixture
async def service() -> AsyncIterator[tuple[str, Received]]:
    """A service that decodes nothing and records what arrived."""
    received = Received()

    async def record(request: web.Request) -> web.Response:
        received.requests.append((request.headers.get("Content-Encoding"), await request.read()))
        return web.Response(status=201, text="ok")

    app = web.Application(client_max_size=8 * LIMIT_BYTES, handler_args={"auto_decompress": False})
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), received
    await server.close()


@pytest.fixture
async def gateway(redis_url: str, service: tuple[str, Received]) -> AsyncIterator[RunningGateway]:
    raw = {
        "redis": {"url": redis_url},
        "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"},
        "routes": [
            {
                "name": "uploads",
                "match": {"path_prefix": "/uploads"},
                "mode": "proxy",
                "upstream": service[0],
                "max_body_bytes": LIMIT_BYTES,
            },
            {
                "name": "reports",
                "match": {"path_prefix": "/reports"},
                "mode": "async",
                "max_body_bytes": LIMIT_BYTES,
            },
        ],
    }
    async with running_gateway(parse_settings(raw, env={})) as running:
        yield running


async def _post(
    gateway: RunningGateway, path: str, coding: str, body: bytes, framing: str
) -> tuple[int, Any]:
    headers = {"Content-Encoding": coding, "Content-Type": "application/json"}
    data: Any = body
    if framing == "chunked":

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(body), 1000):
                yield body[i : i + 1000]

        data = chunks()
    async with gateway.http.post(gateway.url(path), data=data, headers=headers) as r:
        text = await r.text()
        return r.status, (json.loads(text) if r.status >= 400 else text)


async def _stored(redis_url: str) -> list[Job]:
    client = Redis.from_url(redis_url)
    try:
        entries: Any = await client.xrange(RouteKeys("reports").requests)
    finally:
        await client.aclose()
    return [Job.from_fields("reports", fields) for _, fields in entries]


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize(("coding", "body"), GOOD)
async def test_a_proxy_route_passes_the_body_as_sent(
    gateway: RunningGateway, service: tuple[str, Received], coding: str, body: bytes, framing: str
) -> None:
    status, _ = await _post(gateway, "/uploads", coding, body, framing)
    assert status == 201
    assert service[1].requests == [(coding, body)]


@pytest.mark.parametrize(("coding", "body"), GOOD)
async def test_a_queued_route_stores_the_body_and_its_encoding_as_sent(
    gateway: RunningGateway, redis_url: str, coding: str, body: bytes
) -> None:
    status, _ = await _post(gateway, "/reports", coding, body, "length")
    assert status == 202
    (job,) = await _stored(redis_url)
    assert job.body == body
    assert dict((k.lower(), v) for k, v in job.headers)["content-encoding"] == coding


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("path", ["/uploads", "/reports"])
@pytest.mark.parametrize(("coding", "body"), BAD)
async def test_a_body_that_lies_about_its_encoding_is_a_400(
    gateway: RunningGateway,
    service: tuple[str, Received],
    redis_url: str,
    coding: str,
    body: bytes,
    path: str,
    framing: str,
) -> None:
    try:
        status, problem = await _post(gateway, path, coding, body, framing)
    except aiohttp.ClientError:  # the gateway may close before reading a streamed body whole
        pytest.fail("no answer to a badly encoded body")
    assert status == 400, problem
    assert problem["type"].endswith("/bad-encoding")
    assert "Content-Encoding" in problem["detail"]
    assert service[1].requests == []
    assert await _stored(redis_url) == []


@pytest.mark.parametrize("path", ["/uploads", "/reports"])
async def test_a_body_that_inflates_past_the_limit_is_a_413(
    gateway: RunningGateway, service: tuple[str, Received], redis_url: str, path: str
) -> None:
    assert len(BOMB) < LIMIT_BYTES // 64
    status, problem = await _post(gateway, path, "gzip", BOMB, "length")
    assert status == 413
    assert "decode to at most" in problem["detail"]
    assert service[1].requests == []
    assert await _stored(redis_url) == []
