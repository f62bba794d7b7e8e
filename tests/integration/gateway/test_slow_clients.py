"""Slow clients cannot hold connections: head timeout, body stall, idle keep-alive.

The limits are set short here so the suite stays quick; what is asserted is the
outcome (a 408 and a closed connection, nothing admitted), never a duration.
Every client loop is bounded: a connection the gateway fails to close ends the
test as a failure, not a hang.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.web_protocol import RequestHandler
from redis.asyncio import Redis
from yarl import URL

from gateway import slow_clients
from tests.conftest import RunningGateway, make_settings, running_gateway
from tidegate.keys import RouteKeys
from tidegate.settings import Settings, parse_settings

pytestmark = pytest.mark.both_loops
"""Hostile clients against the server as production runs it (uvloop) and on asyncio's loop."""

LIMITS = {"header_timeout_s": 0.3, "body_timeout_s": 0.3, "idle_timeout_s": 0.5}
GIVE_UP_S = 15.0


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_S)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await asyncio.wait_for(reader.readexactly(length), GIVE_UP_S)


@pytest.fixture
async def reading_upstream() -> AsyncIterator[str]:
    """A service that reads whole bodies (so the proxy streams one to it)."""

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


def slow_settings(redis_url: str, upstream: str = "http://127.0.0.1:1") -> Settings:
    base = make_settings(redis_url)
    raw = {
        "redis": {"url": redis_url},
        "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", **LIMITS},
        "routes": [
            {"name": "reports", "match": {"path_prefix": "/reports"}, "mode": "async"},
            {
                "name": "reads",
                "match": {"path_prefix": "/reads", "methods": ["POST"]},
                "mode": "proxy",
                "upstream": upstream,
            },
        ],
    }
    assert base.gateway.header_timeout_s == 10  # the documented defaults
    assert (base.gateway.body_timeout_s, base.gateway.idle_timeout_s) == (30, 75)
    return parse_settings(raw, env={})


async def _connect(gateway: RunningGateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = URL(gateway.url("/"))
    return await asyncio.open_connection(url.host, url.port)


async def _trickle(
    writer: asyncio.StreamWriter, data: bytes, closed: asyncio.Event, every_s: float = 0.05
) -> None:
    """Send a byte at a time until the peer closes or the data runs out."""
    for i in range(len(data)):
        if closed.is_set() or writer.is_closing():
            return
        try:
            writer.write(data[i : i + 1])
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(every_s)


async def _slowloris(gateway: RunningGateway) -> bytes:
    reader, writer = await _connect(gateway)
    closed = asyncio.Event()
    head = b"POST /reports HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400
    sender = asyncio.create_task(_trickle(writer, head, closed))
    try:
        answer = await asyncio.wait_for(reader.read(), GIVE_UP_S)  # EOF: the gateway closed
    finally:
        closed.set()
        await sender
        writer.close()
    return answer


async def test_fifty_slow_heads_are_answered_408_and_closed(redis_url: str) -> None:
    async with running_gateway(slow_settings(redis_url)) as gateway:
        answers = await asyncio.gather(*(_slowloris(gateway) for _ in range(50)))
        assert gateway.gw.in_flight == 0
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 ")
        problem = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert problem["type"].endswith("/request-timeout")


async def test_a_client_that_sends_on_after_its_408_is_cut_off(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the 408 the gateway reads and discards for a while (so that no
    reset destroys the answer), but not for as long as the client sends."""
    monkeypatch.setattr(slow_clients, "LINGER_S", 0.3)
    settings = slow_settings(redis_url)
    # The idle limit would close the connection too: only the lingering may.
    settings = replace(settings, gateway=replace(settings.gateway, idle_timeout_s=60.0))
    async with running_gateway(settings) as gateway:
        reader, writer = await _connect(gateway)
        closed = asyncio.Event()
        head = b"POST /reports HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400
        sender = asyncio.create_task(_trickle(writer, head, closed))
        answer = await asyncio.wait_for(reader.read(), GIVE_UP_S)  # the 408, then EOF
        closed.set()
        await sender
        cut_off = False
        for _ in range(int(GIVE_UP_S / 0.02)):  # bounded: the gateway must end it
            try:
                writer.write(b"a")
                await writer.drain()
            except ConnectionError:
                cut_off = True
                break
            await asyncio.sleep(0.02)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert cut_off


@pytest.mark.parametrize("path", ["/reports", "/reads"])
async def test_a_stalled_body_is_answered_408_and_closed(
    redis_url: str, reading_upstream: str, path: str
) -> None:
    async with running_gateway(slow_settings(redis_url, reading_upstream)) as gateway:
        reader, writer = await _connect(gateway)
        writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode())
        writer.write(b"0123456789")  # and then nothing
        answer = await asyncio.wait_for(reader.read(), GIVE_UP_S)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"Connection: close" in answer.partition(b"\r\n\r\n")[0]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["type"].endswith("/request-timeout")
        rejected = gateway.gw.metrics.rejected.labels(path.strip("/"), "slow_client")
        assert rejected._value.get() == 1
    client = Redis.from_url(redis_url)
    assert await client.xlen(RouteKeys("reports").requests) == 0
    await client.aclose()


async def test_idle_keepalive_connections_close_and_a_slow_second_head_is_cut(
    redis_url: str,
) -> None:
    async with running_gateway(slow_settings(redis_url)) as gateway:
        request = b"POST /reports HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
        reader, writer = await _connect(gateway)
        writer.write(request)
        first = await _read_response(reader)
        assert first.startswith(b"HTTP/1.1 202 ")
        # idle after the answer: the gateway closes the keep-alive connection
        assert await asyncio.wait_for(reader.read(), GIVE_UP_S) == b""
        writer.close()

        reader, writer = await _connect(gateway)
        writer.write(request)
        await _read_response(reader)
        closed = asyncio.Event()
        sender = asyncio.create_task(_trickle(writer, b"POST /reports HTTP/1.1\r\n" * 20, closed))
        second = await asyncio.wait_for(reader.read(), GIVE_UP_S)
        closed.set()
        await sender
        writer.close()
        assert second.startswith(b"HTTP/1.1 408 ")


@pytest.mark.parametrize("path", ["/reports", "/reads"])
@pytest.mark.parametrize("chunked", [False, True])
async def test_a_steady_upload_longer_than_the_head_timeout_is_taken_whole(
    redis_url: str, reading_upstream: str, path: str, chunked: bool
) -> None:
    """The head timer stops with the head: a body that keeps coming (a chunk
    well within ``body_timeout_s`` of the last) may take many times
    ``header_timeout_s`` in all. Before, each chunk restarted the head timer,
    so an upload longer than it was cut with 408."""
    chunks = [b"%02d-" % i + b"x" * 60 for i in range(16)]  # 16 x 0.1 s: 5x the head's 0.3 s
    body = b"".join(chunks)
    if chunked:
        framing, wire = (
            b"Transfer-Encoding: chunked",
            [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks],
        )
        wire[-1] += b"0\r\n\r\n"
    else:
        framing, wire = b"Content-Length: %d" % len(body), chunks
    async with running_gateway(slow_settings(redis_url, reading_upstream)) as gateway:
        reader, writer = await _connect(gateway)
        writer.write(b"POST %s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n" % (path.encode(), framing))
        for piece in wire:
            await asyncio.sleep(0.1)
            writer.write(piece)
            await writer.drain()
        answer = await _read_response(reader)
        writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    if path == "/reads":
        assert head.startswith(b"HTTP/1.1 200 "), answer
        assert payload == body
    else:
        assert head.startswith(b"HTTP/1.1 202 "), answer
        client = Redis.from_url(redis_url)
        entries: Any = await client.xrange(RouteKeys("reports").requests)
        await client.aclose()
        assert [fields[b"body"] for _, fields in entries] == [body]


def test_aiohttp_still_has_what_the_guard_reads() -> None:
    """The head timer reads two attributes of aiohttp's protocol."""
    assert {"_request_count", "_messages"} <= set(RequestHandler.__slots__)
