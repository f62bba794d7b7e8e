"""Proxy routes pass every kind of answer through as the upstream gave it.

Small answers with a declared length are read whole and sent at once; large
ones, and ones without a declared length, stream. Either way the client sees
the upstream's status, headers (repeated ones too) and body byte for byte;
HEAD keeps the GET's length; a client that leaves mid-answer is no error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import RunningGateway, running_gateway, wait_until
from tidegate.settings import Settings

LARGE = bytes(range(256)) * 1024  # 256 KiB: above the whole-body limit


async def answer(request: web.Request) -> web.StreamResponse:
    kind = request.match_info["kind"]
    if kind == "small":
        response = web.Response(status=201, body=b'{"ok":true}', content_type="application/json")
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        response.headers["X-Upstream"] = "yes"
        return response
    if kind == "empty":
        return web.Response(status=204)
    if kind == "not-modified":
        return web.Response(status=304, headers={"ETag": '"v1"'})
    if kind == "large":
        return web.Response(body=LARGE, content_type="application/octet-stream")
    if kind == "huge":  # more than any socket buffer holds: the writes meet the leaving
        huge = web.StreamResponse(status=200)
        huge.content_length = 64 * len(LARGE)
        await huge.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the gateway hung up: its client left
            for _ in range(64):
                await huge.write(LARGE)
            await huge.write_eof()
        return huge
    stream = web.StreamResponse(status=200)  # chunked, no declared length
    await stream.prepare(request)
    for part in (b"one,", b"two,", b"three"):
        await stream.write(part)
    await stream.write_eof()
    return stream


@pytest.fixture
async def answers() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/answers/{kind}", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def proxied(settings: Settings, answers: str) -> AsyncIterator[RunningGateway]:
    routes = tuple(
        replace(
            r,
            upstream=answers,
            match=replace(r.match, path_prefix="/answers", methods=("GET", "HEAD", "POST")),
        )
        if r.name == "reads"
        else r
        for r in settings.routes
    )
    async with running_gateway(replace(settings, routes=routes)) as gateway:
        yield gateway


@pytest.mark.parametrize(
    ("method", "kind", "status", "body"),
    [
        ("GET", "small", 201, b'{"ok":true}'),
        ("GET", "empty", 204, b""),
        ("GET", "not-modified", 304, b""),
        ("GET", "large", 200, LARGE),
        ("GET", "chunked", 200, b"one,two,three"),
        ("HEAD", "small", 201, b""),
        ("HEAD", "large", 200, b""),
    ],
)
async def test_answers_pass_through_unchanged(
    proxied: RunningGateway, answers: str, method: str, kind: str, status: int, body: bytes
) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        async with http.request(method, f"{answers}/answers/{kind}") as r:
            direct = (r.status, r.headers.getall("Set-Cookie", []), r.headers.get("Content-Length"))
        async with http.request(method, proxied.url(f"/answers/{kind}")) as r:
            got = await r.read()
            via = (r.status, r.headers.getall("Set-Cookie", []), r.headers.get("Content-Length"))
            assert r.headers.get("X-Upstream") == ("yes" if kind == "small" else None)
    assert (via[0], got) == (status, body)
    assert via == direct  # the same status, cookies and declared length as the upstream's


async def test_a_client_that_leaves_mid_answer_is_no_error(
    proxied: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    for kind in ("huge", "small"):
        reader, writer = await asyncio.open_connection(proxied.public.host, proxied.public.port)
        writer.write(f"GET /answers/{kind} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        assert (await reader.read(100)).startswith(b"HTTP/1.1 20")  # the head came: leave
        writer.close()
        await writer.wait_closed()

    async def all_ended() -> bool:
        return proxied.gw.in_flight == 0

    await wait_until(all_ended, what="the exchanges to end")
    errors = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == []


@pytest.mark.parametrize("path", ["/answers/small", "/orders"])
async def test_a_client_that_leaves_mid_body_ends_the_exchange_quietly(
    proxied: RunningGateway, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """On a proxy route and a queued one: half a body, then the connection is gone."""
    _, writer = await asyncio.open_connection(proxied.public.host, proxied.public.port)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    writer.write(head.encode() + b"x" * 10)
    await writer.drain()

    async def reading() -> bool:  # the handler is waiting for the rest of the body
        return proxied.gw.in_flight == 1

    await wait_until(reading, what="the gateway to read the body")
    writer.transport.abort()  # gone, without a word

    async def ended() -> bool:
        return proxied.gw.in_flight == 0

    await wait_until(ended, what="the exchange to end")
    errors = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def test_a_lost_connection_is_counted_as_the_client_closing(
    proxied: RunningGateway, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a handler meets when its client's connection is lost (the body's
    stream raises it) is answered 499 and counted, not logged as an error."""

    async def lost(*args: object, **kwargs: object) -> None:
        raise ConnectionResetError("Connection lost")

    monkeypatch.setattr(proxied.gw.ledger, "admit", lost)
    async with proxied.http.post(proxied.url("/orders"), data=b"x") as r:
        assert r.status == 499
    closed = proxied.gw.metrics.rejected.labels("", "client_closed")
    assert closed._value.get() == 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
