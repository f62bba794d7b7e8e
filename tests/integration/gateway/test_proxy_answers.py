"""Proxy routes pass every kind of answer through as the upstream gave it.

Small answers with a declared length are read whole and sent at once; large
ones, and ones without a declared length, stream. Either way the client sees
the upstream's status, headers (repeated ones too) and body byte for byte;
HEAD keeps the GET's length; a client that leaves mid-answer is no error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import RunningGateway, running_gateway, wait_until
from tidegate.settings import Settings

pytestmark = pytest.mark.both_loops
"""Protocols of our own on sockets: run on asyncio's loop and on uvloop's."""

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


HOSTILE = {
    "length-and-chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n5\r\nsmugg\r\n0\r\n\r\n",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\nhi",
    "folded-header": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n X-B: 2\r\nContent-Length: 0\r\n\r\n",
    "upgrade": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
    "not-http": b"220 smtp.example.com ESMTP\r\n",
    "short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhi",
}
MID_ANSWER = {  # a good head, then a body that breaks off
    "bad-chunk-mid": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\none\r\n3\r\ntwo\r\nzz\r\nbroken",
}
GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# A second answer smuggled behind the first: never served to the next request.
SMUGGLED = GOOD + b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nstolen!"


@pytest.fixture
async def hostile(settings: Settings) -> AsyncIterator[RunningGateway]:
    """A proxy route to an upstream whose answer to /answers/NAME is HOSTILE[NAME]."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                name = head.split(b" ")[1].rsplit(b"/", 1)[1].decode()
                known = {"ok": GOOD, "smuggled": SMUGGLED, **MID_ANSWER}
                writer.write(known.get(name) or HOSTILE[name])
                await writer.drain()
                if name in HOSTILE:
                    break
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    routes = tuple(
        replace(
            r, upstream=f"http://127.0.0.1:{port}", match=replace(r.match, path_prefix="/answers")
        )
        if r.name == "reads"
        else r
        for r in settings.routes
    )
    async with running_gateway(replace(settings, routes=routes)) as gateway:
        yield gateway
    server.close()


@pytest.mark.parametrize("name", HOSTILE)
async def test_a_malformed_answer_is_a_502_and_its_connection_is_dropped(
    hostile: RunningGateway, name: str
) -> None:
    async with hostile.http.get(hostile.url("/answers/ok")) as r:
        assert (r.status, await r.read()) == (200, b"ok")  # a kept-alive connection now
    async with hostile.http.get(hostile.url(f"/answers/{name}")) as r:
        problem = await r.json(content_type=None)
        assert (r.status, problem["type"].rsplit("/", 1)[-1]) == (502, "upstream-unreachable")
        assert "smugg" not in json.dumps(problem)
    async with hostile.http.get(hostile.url("/answers/ok")) as r:
        assert (r.status, await r.read()) == (200, b"ok")


async def test_an_upstream_failing_mid_answer_cuts_the_client_off(
    hostile: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Its head is out (chunked, no length): the client must see an answer that
    never ends, not a terminated one, and nothing written after it."""
    reader, writer = await asyncio.open_connection(hostile.public.host, hostile.public.port)
    writer.write(b"GET /answers/bad-chunk-mid HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    seen = await reader.read()  # to the connection's end
    writer.close()
    assert seen.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked" in seen
    assert not seen.endswith(b"0\r\n\r\n")  # the chunked body was never terminated
    assert seen.count(b"HTTP/1.1") == 1  # no second answer after it
    assert b"two" in seen
    assert b"broken" not in seen
    errors = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def test_an_answer_smuggled_behind_another_never_reaches_a_client(
    hostile: RunningGateway,
) -> None:
    async with hostile.http.get(hostile.url("/answers/smuggled")) as r:
        assert await r.read() == b"ok"
    for _ in range(3):
        async with hostile.http.get(hostile.url("/answers/ok")) as r:
            assert await r.read() == b"ok"
