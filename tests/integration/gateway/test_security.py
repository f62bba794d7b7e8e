"""The gateway as a hostile client meets it: paths, poisoned headers, tenants,
credentials, forwarding headers, secrets; against a real redis-server.

Requests that aiohttp's client would refuse to send (bytes that are not UTF-8
in a header, raw backslashes) go over raw sockets.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from yarl import URL

from gateway.rejections import KINDS, for_error
from tests.conftest import RunningGateway, running_gateway, running_worker, wait_until
from tests.redis_server import RedisServer
from tidegate.envelope import Job
from tidegate.errors import Unencodable
from tidegate.keys import RouteKeys, new_job_id
from tidegate.ledger.admission import Admission, AdmissionQueue, Admitted
from tidegate.settings import Settings, parse_settings
from worker.relay import Relay

KEY_A, KEY_B = "key-of-tenant-a-0123456789", "key-of-tenant-b-9876543210"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Seen:
    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Capture:
    """An upstream that records what reached it; paths under /fail answer 500."""

    server: TestServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


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


def settings_for(
    redis_url: str, upstream: str, *, tenants: bool = False, **gateway: Any
) -> Settings:
    raw: dict[str, Any] = {
        "redis": {"url": redis_url, "connect_timeout_s": 0.5},
        "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", **gateway},
        "routes": [
            {
                "name": "orders",
                "match": {"path_prefix": "/orders", "methods": ["POST", "PUT"]},
                "mode": "async",
            },
            {
                "name": "exports",
                "match": {"path_prefix": "/exports", "methods": ["POST"]},
                "mode": "async",
            },
            {
                "name": "fail",
                "match": {"path_prefix": "/fail", "methods": ["POST"]},
                "mode": "async",
                "worker": {"max_attempts": 1, "timeout_s": 2},
            },
            {
                "name": "reads",
                "match": {"path_prefix": "/orders", "methods": ["GET"]},
                "mode": "proxy",
                "upstream": upstream + "/base",
            },
        ],
    }
    if tenants:
        raw["tenants"] = [
            {"name": "a", "api_key_sha256": _sha(KEY_A)},
            {"name": "b", "api_key_sha256": _sha(KEY_B)},
        ]
    return parse_settings(raw, env={})


async def raw_request(gateway: RunningGateway, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are; the status and the body of the answer."""
    url = URL(gateway.url("/"))
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(head + b"\r\n\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


async def stream_lengths(redis_url: str) -> int:
    client = Redis.from_url(redis_url)
    try:
        lengths = [await client.xlen(RouteKeys(r).requests) for r in ("orders", "exports", "fail")]
    finally:
        await client.aclose()
    return sum(lengths)


BAD_SEGMENTS = ["..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e", "%252e%252e", "%25%32%65%25%32%65",
                "%2f", "%2F", "%5c", "%5C", "%252F", "a%2fb", "%00", "x%00", "%0a", "%zz",
                "%"]  # fmt: skip
TEMPLATES = [
    ("POST", "/exports/{}/orders"),
    ("POST", "/orders/{}/x"),
    ("POST", "/{}/orders"),
    ("GET", "/orders/{}/secret"),
    ("GET", "/orders/1/{}"),
    ("GET", "/_tidegate/jobs/{}"),
    ("GET", "/_tidegate/{}/openapi.json"),
]


async def test_unsafe_paths_are_refused_before_routing(
    redis_url: str, capture: Capture, relay_worker: Any
) -> None:
    settings = settings_for(redis_url, capture.url)
    targets = [(m, t.format(bad)) for bad in BAD_SEGMENTS for m, t in TEMPLATES]
    targets += [(m, t.format(s)) for s in ("%2f", "%2F", "%5c", "%252F") for m, t in TEMPLATES]
    targets += [("POST", "/exports/..%2forders"), ("GET", "/orders/%2e%2e/%2e%2e/secret")]
    targets += [("POST", "/exports\\..\\orders"), ("GET", "/orders/a\\b")]
    assert len(targets) > 150
    async with running_gateway(settings) as gateway:
        answers = await asyncio.gather(
            *(
                raw_request(gateway, f"{m} {t} HTTP/1.1\r\nHost: x\r\nConnection: close".encode())
                for m, t in targets
            )
        )
    wrong = [(t, s) for (_, t), (s, _) in zip(targets, answers, strict=True) if s != 400]
    assert not wrong, f"not refused: {wrong[:10]}"
    for _, body in answers:
        problem = json.loads(body)
        assert problem["type"].endswith(("/unsafe-path", "/http-400"))
    assert await stream_lengths(redis_url) == 0
    assert capture.seen == []


async def test_the_forwarded_path_is_the_matched_path(redis_url: str, capture: Capture) -> None:
    settings = settings_for(redis_url, capture.url)
    cases = {
        "//orders///%6Fne/a%2Bb/": "/orders/one/a%2Bb/",
        "/orders/%37%38?x=%2F&y=%26": "/orders/78",
        "/%6F%72ders/caf%c3%a9": "/orders/caf%C3%A9",
    }
    async with (
        running_gateway(settings) as gateway,
        running_worker(settings, "orders", Relay(capture.url, 2.0, prefix="/orders")),
    ):
        for raw in cases:
            url = URL(gateway.url("/")).with_path("/", encoded=True)
            async with gateway.http.post(URL(str(url).rstrip("/") + raw, encoded=True)) as r:
                assert r.status == 202, await r.text()
        # proxy route: the upstream's base path is kept, nothing escapes it
        target = URL(gateway.url("/")).join(URL("/orders/%37?q=%2F", encoded=True))
        async with gateway.http.get(target) as r:
            assert r.status == 200
        await wait_until(lambda: _count(capture, 4), what="the upstream to see every request")
    queued = sorted(s.raw_path for s in capture.seen if s.method == "POST")
    assert queued == sorted(cases.values())
    (proxied,) = [s for s in capture.seen if s.method == "GET"]
    assert (proxied.raw_path, proxied.raw_query) == ("/base/orders/7", "q=%2F")
    queries = {s.raw_query for s in capture.seen if s.method == "POST"}
    assert "x=%2F&y=%26" in queries  # forwarded as sent, not decoded


async def _count(capture: Capture, n: int) -> bool:
    return len(capture.seen) >= n


@pytest.mark.parametrize(
    "path", ["/exports/../orders", "/other", "/orders/%2e%2e/x", "/ordersx", "/orders/a%2fb", ""]
)
async def test_the_relay_never_calls_outside_its_route(capture: Capture, path: str) -> None:
    relay = Relay(capture.url, 2.0, prefix="/orders")
    await relay.open()
    try:
        outcome = await relay(
            Job(id=new_job_id("orders"), route="orders", method="POST", path=path)
        )
    finally:
        await relay.close()
    assert not getattr(outcome, "retryable", True)
    assert "outside the route" in getattr(outcome, "error", "")
    assert capture.seen == []


def _poisoned() -> list[tuple[bytes, int]]:
    key = f"X-Api-Key: {KEY_A}".encode()
    base = b"POST /exports/p HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2"
    return [
        (base + b"\r\n" + key + b"\r\nX-Note: caf\xe9 \xff\xfe", 400),
        (base + b"\r\n" + key + b"\r\nIdempotency-Key: k\xff\xfe", 400),
        (base + b"\r\n" + key + b"\r\nIdempotency-Key: " + b"k" * 256, 400),
        (base + b"\r\n" + key + b"\r\nIdempotency-Key: caf\xc3\xa9", 400),
        (base + b"\r\n" + key + b"\r\nTidegate-Priority: urgent", 400),
        (base + b"\r\n" + key + b"\r\nUser-Agent: \xc0\xaf", 400),
        (base + b"\r\nX-Api-Key: \xff\xfe\xfd", 400),
        (base + b"\r\nAuthorization: Bearer \xc3\x28", 400),
        (base + b"\r\nX-Api-Key: not-a-key", 401),
    ]


async def test_one_bad_request_fails_alone(redis_url: str, capture: Capture) -> None:
    settings = settings_for(redis_url, capture.url, tenants=True)
    good_head = (
        f"POST /exports/g HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n"
        f"X-Api-Key: {KEY_A}"
    ).encode()
    poisoned = _poisoned() * 8
    requests: list[tuple[bytes, int]] = []
    for i in range(300):
        requests.append((good_head + f"\r\nIdempotency-Key: good-{i}".encode(), 202))
        if i % 4 == 0 and poisoned:
            requests.append(poisoned.pop())
    assert not poisoned
    async with running_gateway(settings) as gateway:
        answers = await asyncio.gather(*(raw_request(gateway, h, b"ok") for h, _ in requests))
    wrong = [
        (head[-40:], want, got)
        for (head, want), (got, _) in zip(requests, answers, strict=True)
        if got != want
    ]
    assert not wrong, wrong[:5]
    pairs = zip(requests, answers, strict=True)
    ids = {json.loads(body)["id"] for (_, want), (_, body) in pairs if want == 202}
    assert len(ids) == 300
    assert await stream_lengths(redis_url) == 300


async def test_a_batch_that_cannot_be_encoded_is_sifted(redis_url: str, redis: Redis) -> None:
    settings = settings_for(redis_url, "http://127.0.0.1:1")
    route = settings.route("orders")

    def job(key: str, path: str = "/orders") -> Admission:
        return Admission(Job(new_job_id("orders"), "orders", "POST", path), idempotency_key=key)

    items = [job("fine"), job("caf\udce9"), job("fine too"), job("k", "/orders/\udcff")]
    queue = AdmissionQueue(redis, batch_max_size=16)
    results = await queue.flush([(route, a) for a in items])
    assert [type(r) for r in results] == [Admitted, Unencodable, Admitted, Unencodable]
    refused = [for_error(r) for r in results if isinstance(r, Unencodable)]
    assert all(r.kind in KINDS and r.status == 400 for r in refused)
    assert await redis.xlen(RouteKeys("orders").requests) == 2


async def _post(
    gateway: RunningGateway, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with gateway.http.post(gateway.url(path), data=body, headers=headers) as r:
        return r.status, json.loads(await r.read())


async def test_idempotency_keys_belong_to_their_tenant(redis_url: str, capture: Capture) -> None:
    settings = settings_for(redis_url, capture.url, tenants=True)
    a = {"X-Api-Key": KEY_A, "Idempotency-Key": "order-1"}
    b = {"X-Api-Key": KEY_B, "Idempotency-Key": "order-1"}
    async with running_gateway(settings) as gateway:
        status, first = await _post(gateway, "/exports", b"same", a)
        assert status == 202
        status, again = await _post(gateway, "/exports", b"same", a)
        assert (status, again["id"]) == (202, first["id"])
        status, other = await _post(gateway, "/exports", b"same", b)
        assert status == 202
        assert other["id"] != first["id"]  # B's equal key is B's own job
        status, changed = await _post(
            gateway, "/exports", b"another body", {**b, "X-Api-Key": KEY_B}
        )
        assert status == 422
        assert first["id"] not in json.dumps(changed)  # never names A's job
        status, conflict = await _post(gateway, "/exports", b"another body", a)
        assert status == 422
        assert other["id"] not in json.dumps(conflict)
        async with gateway.http.get(
            gateway.url(f"/_tidegate/jobs/{first['id']}"), headers={"X-Api-Key": KEY_B}
        ) as r:
            assert r.status == 404


async def _every_value(redis_url: str) -> bytes:
    """Every byte Redis holds, keys and values, concatenated."""
    client: Any = Redis.from_url(redis_url)  # replies are bytes (no decoding)
    out = bytearray()
    try:
        async for key in client.scan_iter(count=1000):
            out += key
            kind = (await client.type(key)).decode()
            if kind == "stream":
                for _, fields in await client.xrange(key):
                    for k, v in fields.items():
                        out += k + v
            elif kind == "hash":
                for k, v in (await client.hgetall(key)).items():
                    out += k + v
            elif kind == "string":
                out += await client.get(key) or b""
            elif kind == "zset":
                out += b"".join(await client.zrange(key, 0, -1))
            elif kind == "set":
                out += b"".join(await client.smembers(key))
    finally:
        await client.aclose()
    return bytes(out)


async def test_credentials_are_never_stored_or_forwarded(redis_url: str, capture: Capture) -> None:
    settings = settings_for(redis_url, capture.url, tenants=True)
    bearer = {"Authorization": f"Bearer {KEY_B}"}
    async with (
        running_gateway(settings) as gateway,
        running_worker(settings, "orders", Relay(capture.url, 2.0)),
        running_worker(settings, "fail", Relay(capture.url, 2.0)),
    ):
        assert (await _post(gateway, "/orders", b"one", {"X-Api-Key": KEY_A}))[0] == 202
        assert (await _post(gateway, "/orders", b"two", bearer))[0] == 202
        # a Basic credential meant for the service passes; the gateway's key does not
        upstream_auth = {"X-Api-Key": KEY_A, "Authorization": "Basic dXNlcjpwdw=="}
        assert (await _post(gateway, "/orders", b"three", upstream_auth))[0] == 202
        assert (await _post(gateway, "/fail", b"dead", {"X-Api-Key": KEY_A}))[0] == 202
        async with gateway.http.get(gateway.url("/orders/1"), headers=bearer) as r:
            assert r.status == 200
        await wait_until(lambda: _count(capture, 5), what="every request to reach the upstream")

        async def dead_lettered() -> bool:
            client = Redis.from_url(redis_url)
            try:
                return int(await client.xlen(RouteKeys("fail").dead)) == 1
            finally:
                await client.aclose()

        await wait_until(dead_lettered, what="the failing job to be dead-lettered")
        stored = await _every_value(redis_url)
    for key in (KEY_A, KEY_B):
        assert key.encode() not in stored
        for seen in capture.seen:
            assert all(key not in v for _, v in seen.headers), seen.headers
    names = [{k.lower() for k, _ in s.headers} for s in capture.seen]
    assert all("x-api-key" not in n for n in names)
    basic = [s for s in capture.seen if s.body == b"three"]
    assert ("Authorization", "Basic dXNlcjpwdw==") in basic[0].headers


SPOOFED = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "Forwarded": "for=203.0.113.9",
    "X-Real-IP": "203.0.113.9",
}


@pytest.mark.parametrize("trusted", [(), ("127.0.0.0/8",), ("10.0.0.0/8", "::1/128")])
async def test_forwarding_headers_are_the_gateways_own(
    redis_url: str, capture: Capture, trusted: tuple[str, ...]
) -> None:
    settings = settings_for(redis_url, capture.url, trusted_proxies=list(trusted))
    async with running_gateway(settings) as gateway:
        async with gateway.http.get(gateway.url("/orders/1"), headers=SPOOFED) as r:
            assert r.status == 200
        host = URL(gateway.url("/")).raw_authority
    headers = dict(capture.seen[0].headers)
    if "127.0.0.0/8" in trusted:
        assert headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
        assert headers["X-Forwarded-Proto"] == "https"
        assert headers["X-Forwarded-Host"] == "evil.example"
        assert headers["Forwarded"] == "for=203.0.113.9"
    else:
        assert headers["X-Forwarded-For"] == "127.0.0.1"
        assert headers["X-Forwarded-Proto"] == "http"
        assert headers["X-Forwarded-Host"] == host
        assert "Forwarded" not in headers
        assert "X-Real-IP" not in headers


def test_trusted_proxies_must_be_networks() -> None:
    from tidegate.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        parse_settings({"gateway": {"trusted_proxies": ["10.0.0.0/8", "not-a-net"]}}, env={})
    assert "gateway.trusted_proxies" in str(e.value)


async def test_secrets_stay_out_of_logs_status_and_errors(
    capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    password = "s3cret-redis-pw"
    server = RedisServer(password=password)
    server.start()
    try:
        settings = settings_for(server.url, "http://svc-user:upstream-pw@127.0.0.1:1")
        caplog.set_level(logging.DEBUG)
        async with running_gateway(settings) as gateway:
            assert password in settings.redis.url
            status, _ = await _post(gateway, "/orders", b"x", {})
            assert status == 202
            async with gateway.http.get(gateway.admin_url("/status")) as r:
                shown = await r.text()
                assert r.status == 200
            async with gateway.http.get(gateway.url("/orders/1")) as r:
                assert r.status == 502
                error = await r.text()
            server.stop()
            async with gateway.http.post(gateway.url("/orders"), data=b"y") as r:
                assert r.status == 503
                error += await r.text()

            async def logged_down() -> bool:
                return "Redis unreachable" in caplog.text

            await wait_until(logged_down, what="the outage to be logged")
    finally:
        server.close()
    assert "Redis reachable at redis://:***@127.0.0.1" in caplog.text
    for secret in (password, "upstream-pw"):
        assert secret not in caplog.text
        assert secret not in shown
        assert secret not in error


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("POST", "/_tidegate/jobs/orders.AAAAAAAAAAAAAAAAAAAAAAAA", 405, "GET, HEAD, DELETE"),
        ("PUT", "/_tidegate/jobs/x", 405, "GET, HEAD, DELETE"),
        ("POST", "/_tidegate/jobs/x/result", 405, "GET, HEAD"),
        ("DELETE", "/_tidegate/jobs/x/events", 405, "GET, HEAD"),
        ("POST", "/_tidegate/openapi.json", 405, "GET, HEAD"),
        ("POST", "/_tidegate/jobs/bad!id", 404, None),
        ("DELETE", "/_tidegate/jobs/a:b", 404, None),
        ("GET", "/_tidegate/jobs/a:b", 404, None),
        ("GET", "/_tidegate/jobs/%7Eok", 404, None),
        ("GET", "/_tidegate/nothing", 404, None),
        ("PATCH", "/_tidegate/jobs/a%20b", 404, None),
    ],
)
async def test_job_api_methods_and_ids(
    gateway: RunningGateway, method: str, path: str, status: int, allow: str | None
) -> None:
    url = URL(gateway.url("/")).join(URL(path, encoded=True))
    async with gateway.http.request(method, url) as r:
        assert r.status == status
        assert r.headers.get("Allow") == allow
        assert r.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("prefer", "applied"),
    [("wait=100", "wait=0.3"), ("wait=0.1", "wait=0.1"), ("respond-async", "respond-async")],
)
async def test_preference_applied_is_the_wait_applied(
    redis_url: str, prefer: str, applied: str
) -> None:
    from tests.conftest import make_settings

    settings = make_settings(redis_url, wait_s=0.3)
    async with (
        running_gateway(settings) as gateway,
        gateway.http.post(gateway.url("/orders"), data=b"x", headers={"Prefer": prefer}) as r,
    ):
        assert r.status == 202
        assert r.headers["Preference-Applied"] == applied


async def test_malformed_requests_log_one_line(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    for head in (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x", b"GARBAGE\x01 / HTTP/1.1\r\nHost: x"):
        status, _ = await raw_request(gateway, head)
        assert status == 400
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(records) == 2
    for record in records:
        assert record.exc_info is None
        assert record.exc_text is None
        assert "\n" not in record.getMessage()
        assert "malformed request (400)" in record.getMessage()
