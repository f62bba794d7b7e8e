"""A real WSGI service behind every route kind answers as if called directly.

The same requests go to the service itself and through the gateway, on a
proxy route and on a sync route (a relay worker calls the service); the
answers are compared: status, body, and every response header byte for byte.
What differs is listed in ``DIFFERENCES``, each with its reason (``docs/http-api.md``'s
"What a service sees" says the same): anything else is a defect. Then the
route options a service behind a prefix needs: ``strip_prefix``,
``preserve_host`` and ``rewrite_location``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningGateway, running_gateway, running_worker
from tests.wsgi_service import HEAD_BODY, WsgiService
from tidegate.settings import parse_settings
from worker.relay import Relay

LARGE = bytes(range(256)) * 800  # 200 KiB: streamed on a proxy route


# name, method, target, request headers, body. (wsgiref reads a body by its
# length only: a client's chunked body is not one it can be called with.)
CASES: list[tuple[str, str, str, dict[str, str], Any]] = [
    ("get-query", "GET", "/svc/echo?x=1&y=%20z&x=2", {}, b""),
    ("post-json", "POST", "/svc/echo", {"Content-Type": "application/json"}, b'{"a": 1}'),
    ("post-large", "POST", "/svc/echo", {"Content-Type": "application/octet-stream"}, LARGE),
    ("put-gzip", "PUT", "/svc/echo", {"Content-Encoding": "gzip"}, gzip.compress(b"x" * 5000)),
    ("retry-headers", "POST", "/svc/echo", {"Idempotency-Key": "k-1", "Prefer": "lenient"}, b"x"),
    ("custom-headers", "POST", "/svc/echo", {"X-Trace": "t1", "Accept-Language": "de"}, b"x"),
    ("no-content-type", "GET", "/svc/plain", {}, b""),
    ("latin-1-header", "GET", "/svc/latin", {}, b""),
    ("head-length", "HEAD", "/svc/head", {}, b""),
    ("get-head-body", "GET", "/svc/head", {}, b""),
    ("redirect", "GET", "/svc/redirect", {}, b""),
]

GATEWAY_SET = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
DIFFERENCES: dict[str, dict[str, Any]] = {
    # Every route: the gateway says who called (X-Forwarded-*), and its own
    # Date and Server go out (the service's are not passed on).
    "proxy": {"request_headers": GATEWAY_SET},
    # Queued: the job id is the service's Idempotency-Key (a retried job runs
    # once), the attempt is counted, Prefer is the gateway's (the wait).
    "sync": {"request_headers": GATEWAY_SET | {"idempotency-key", "tidegate-attempt", "prefer"}},
    # Async: the same, the answer redeemed with GET on the job's result (so a
    # HEAD's answer is read as a GET of the stored one: not compared).
    "async": {"request_headers": GATEWAY_SET | {"idempotency-key", "tidegate-attempt", "prefer"}},
}
NOT_COMPARED = {"date", "server", "tidegate-job", "connection", "keep-alive"}


@pytest.fixture
def service() -> Iterator[WsgiService]:
    with WsgiService() as running:
        yield running


def route(kind: str, service: WsgiService, **extra: Any) -> dict[str, Any]:
    base = {
        "name": "svc",
        "match": {"path_prefix": "/svc", "methods": ["GET", "HEAD", "POST", "PUT"]},
        "mode": kind,
        "max_body_bytes": 1048576,
        **extra,
    }
    if kind == "proxy":
        base["upstream"] = service.url
    elif kind == "sync":
        base["wait_s"] = 20
    return base


@asynccontextmanager
async def _served(
    redis_url: str, kind: str, service: WsgiService, **extra: Any
) -> AsyncIterator[RunningGateway]:
    settings = parse_settings(
        {
            "redis": {"url": redis_url},
            "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"},
            "routes": [route(kind, service, **extra)],
        },
        env={},
    )
    async with running_gateway(settings) as gateway:
        if kind == "proxy":
            yield gateway
        else:
            async with running_worker(settings, "svc", Relay(service.url, 10.0)):
                yield gateway


async def _call(
    http: aiohttp.ClientSession,
    base: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: Any,
) -> tuple[int, list[tuple[str, bytes]], bytes]:
    data = body or None
    async with http.request(
        method, base + target, headers=headers, data=data, allow_redirects=False
    ) as r:
        raw = [(k.decode("latin-1").lower(), v) for k, v in r.raw_headers]
        return r.status, raw, await r.read()


async def _redeemed(
    http: aiohttp.ClientSession,
    base: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: Any,
) -> tuple[int, list[tuple[str, bytes]], bytes]:
    """An async route's answer: 202 with the job, then its stored result."""
    async with http.request(method, base + target, headers=headers, data=body or None) as r:
        assert r.status == 202, await r.text()
        location = r.headers["Location"]
    for _ in range(400):
        status, raw, answer = await _call(http, base, "GET", location + "/result", {}, b"")
        if status != 202:
            return status, raw, answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"no result for {location}")


@pytest.mark.parametrize("kind", ["proxy", "sync", "async"])
async def test_a_real_service_answers_through_every_route_kind_as_called_directly(
    redis_url: str, service: WsgiService, kind: str
) -> None:
    allowed = DIFFERENCES[kind]
    mismatches: list[str] = []
    http = aiohttp.ClientSession()
    call = _redeemed if kind == "async" else _call
    try:
        async with _served(redis_url, kind, service) as gateway:
            via = gateway.url("").rstrip("/")
            for name, method, target, headers, body in CASES:
                if kind == "async" and method == "HEAD":
                    continue
                direct = await _call(http, service.url, method, target, headers, body)
                through = await call(http, via, method, target, headers, body)
                mismatches += _compare(name, direct, through, allowed)
    finally:
        await http.close()
    assert not mismatches, "\n".join(mismatches)


def _compare(
    name: str,
    direct: tuple[int, list[tuple[str, bytes]], bytes],
    through: tuple[int, list[tuple[str, bytes]], bytes],
    allowed: dict[str, Any],
) -> list[str]:
    out = []
    if direct[0] != through[0]:
        out.append(f"{name}: status {direct[0]} directly, {through[0]} through the gateway")
    echoed = direct[2].startswith(b"{") and through[2].startswith(b"{")
    # An echo's length follows what the service saw (compared below).
    skip = NOT_COMPARED | {"content-length"} if echoed else NOT_COMPARED
    mine = [(k, v) for k, v in direct[1] if k not in skip]
    theirs = [(k, v) for k, v in through[1] if k not in skip]
    if sorted(mine) != sorted(theirs):
        out.append(f"{name}: response headers {sorted(mine)} != {sorted(theirs)}")
    if echoed:
        seen_direct, seen_through = json.loads(direct[2]), json.loads(through[2])
        for seen in (seen_direct, seen_through):
            for header in allowed["request_headers"] | {"content-length"}:
                seen["headers"].pop(header, None)
        if seen_direct != seen_through:
            out.append(f"{name}: the service saw {seen_direct} directly, {seen_through} through")
    elif direct[2] != through[2]:
        out.append(f"{name}: body {direct[2][:60]!r} != {through[2][:60]!r}")
    return out


@pytest.mark.parametrize("kind", ["proxy", "sync"])
async def test_a_route_strips_its_prefix_keeps_the_host_and_rewrites_redirects(
    redis_url: str, service: WsgiService, kind: str
) -> None:
    """Served under /app, the service lives at /svc: the prefix is stripped
    (so /app/svc/echo reaches /svc/echo), the client's Host is kept (the
    service's absolute redirect names the gateway), or a redirect naming the
    service is rewritten to the route's public prefix."""
    http = aiohttp.ClientSession()
    try:
        extra = {
            "match": {"path_prefix": "/app", "methods": ["GET", "POST"]},
            "forwarding": {"strip_prefix": True, "preserve_host": True},
        }
        async with _served(redis_url, kind, service, **extra) as gateway:
            via = gateway.url("").rstrip("/")
            host = via.removeprefix("http://")
            status, _, body = await _call(http, via, "POST", "/app/svc/echo?q=1", {}, b"x")
            assert status == 200
            seen = json.loads(body)
            assert (seen["path"], seen["query"], seen["headers"]["host"]) == (
                "/svc/echo",
                "q=1",
                host,
            )
            status, headers, _ = await _call(http, via, "GET", "/app/svc/redirect", {}, b"")
            assert status == 302
            assert dict(headers)["location"] == f"http://{host}/svc/echo".encode()
            status, _, body = await _call(http, via, "GET", "/app", {}, b"")
            assert json.loads(body)["path"] == "/"  # the prefix alone is the root
        rewrite = {
            "match": {"path_prefix": "/app", "methods": ["GET"]},
            "forwarding": {
                "strip_prefix": True,
                "rewrite_location": [{"from_prefix": service.url + "/", "to_prefix": "/app/"}],
            },
        }
        async with _served(redis_url, kind, service, **rewrite) as gateway:
            via = gateway.url("").rstrip("/")
            status, headers, _ = await _call(http, via, "GET", "/app/svc/redirect", {}, b"")
            assert status == 302
            assert dict(headers)["location"] == b"/app/svc/echo"
            status, headers, body = await _call(http, via, "GET", "/app/svc/head", {}, b"")
            assert (status, body) == (200, HEAD_BODY)
    finally:
        await http.close()
