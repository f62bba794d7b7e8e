"""Tenants and secrets: idempotency keys per tenant, credentials never stored or
forwarded, forwarding headers, secrets out of logs, status and errors.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from redis.asyncio import Redis
from yarl import URL

from tests.conftest import RunningGateway, running_gateway, running_worker, wait_until
from tests.integration.gateway.hostile import (
    KEY_A,
    KEY_B,
    Capture,
    raw_request,
    received,
    settings_for,
)
from tests.redis_server import RedisServer
from tidegate.keys import RouteKeys
from tidegate.settings import parse_settings
from worker.relay import Relay

pytestmark = pytest.mark.both_loops
"""Hostile clients against the server as production runs it (uvloop) and on asyncio's loop."""


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
        await wait_until(lambda: received(capture, 5), what="every request to reach the upstream")

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


@pytest.mark.parametrize("where", ["userinfo", "query"])
async def test_secrets_stay_out_of_logs_status_and_errors(
    capture: Capture, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    password = "s3cret-redis-pw"
    server = RedisServer(password=password)
    server.start()
    url = server.url
    if where == "query":  # redis-py takes the password from the query as well
        url = url.replace(f":{password}@", "") + f"?password={password}"
    try:
        settings = settings_for(url, "http://svc-user:upstream-pw@127.0.0.1:1")
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
    logged = "redis://:***@127.0.0.1" if where == "userinfo" else "/0?password=***"
    assert f"Redis reachable at {logged}" in caplog.text or logged in caplog.text
    for secret in (password, "upstream-pw"):
        assert secret not in caplog.text
        assert secret not in shown
        assert secret not in error


# (headers as sent, the answer: "ok" or "conflict", headers that must reach the service)
KEY_CASES: list[tuple[list[tuple[str, str]], str, list[tuple[str, str]]]] = [
    ([("X-Api-Key", KEY_A), ("Authorization", f"Bearer {KEY_A}")], "ok", []),
    ([("X-Api-Key", KEY_A), ("Authorization", f"Bearer {KEY_B}")], "conflict", []),
    ([("X-Api-Key", KEY_B), ("Authorization", f"bearer {KEY_A}")], "conflict", []),
    ([("X-Api-Key", KEY_A), ("X-Api-Key", KEY_A)], "ok", []),
    ([("X-Api-Key", KEY_A), ("X-Api-Key", KEY_B)], "conflict", []),
    ([("X_Api_Key", KEY_A)], "ok", []),
    ([("X-Api-Key", KEY_A), ("x_api_key", KEY_B)], "conflict", []),
    ([("Authorization", f"Bearer {KEY_A}"), ("X-Api-Key", "junk")], "ok", []),
    ([("Authorization", f"Bearer {KEY_A}"), ("Authorization", f"Bearer {KEY_A}")], "ok", []),
    (
        [("X-Api-Key", KEY_A), ("Authorization", "Bearer token-for-the-service")],
        "ok",
        [("Authorization", "Bearer token-for-the-service")],
    ),
]


def _head(method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: x", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize(("sent", "answer", "forwarded"), KEY_CASES)
async def test_a_key_in_any_header_the_scheme_reads_is_stripped_and_two_tenants_refused(
    redis_url: str,
    capture: Capture,
    sent: list[tuple[str, str]],
    answer: str,
    forwarded: list[tuple[str, str]],
) -> None:
    settings = settings_for(redis_url, capture.url, tenants=True)
    async with (
        running_gateway(settings) as gateway,
        running_worker(settings, "orders", Relay(capture.url, 2.0)),
    ):
        queued, _ = await raw_request(gateway, _head("POST", "/orders", sent, b"q"), b"q")
        proxied, _ = await raw_request(gateway, _head("GET", "/orders/1", sent, b""))
        if answer == "conflict":
            assert (queued, proxied) == (400, 400)
        else:
            assert (queued, proxied) == (202, 200)
            await wait_until(lambda: received(capture, 2), what="both at the service")
        stored = await _every_value(redis_url)
    for key in (KEY_A, KEY_B):
        assert key.encode() not in stored
        for seen in capture.seen:
            assert all(key not in v for _, v in seen.headers), seen.headers
    for seen in capture.seen:
        names = {k.lower().replace("_", "-") for k, _ in seen.headers}
        assert "x-api-key" not in names
        for header in forwarded:
            assert header in seen.headers


SPELLINGS = [
    "X_Forwarded_For", "x_forwarded_for", "X-Forwarded_For", "X_Real_IP", "x_real_ip",
    "X_Forwarded_Proto", "X_Forwarded_Host", "x-forwarded_host", "X_Forwarded_Port",
    "X_Forwarded_Prefix", "FORWARDED", "X-FORWARDED-FOR",
]  # fmt: skip


@pytest.mark.parametrize("route", [("GET", "/orders/1"), ("POST", "/orders")])
async def test_forwarding_headers_in_any_spelling_are_the_gateways(
    redis_url: str, capture: Capture, route: tuple[str, str]
) -> None:
    """From an untrusted client, no spelling of a forwarding header reaches
    the service: a WSGI server would merge X_Forwarded_For into the
    gateway's own X-Forwarded-For."""
    settings = settings_for(redis_url, capture.url)
    sent = [(name, "6.6.6.6") for name in SPELLINGS]
    method, path = route
    async with (
        running_gateway(settings) as gateway,
        running_worker(settings, "orders", Relay(capture.url, 2.0)),
    ):
        status, _ = await raw_request(gateway, _head(method, path, sent, b"x"), b"x")
        assert status in (200, 202)
        await wait_until(lambda: received(capture, 1), what="the request at the service")
    (seen,) = capture.seen
    assert all("6.6.6.6" not in v for _, v in seen.headers), seen.headers
    normalised = {k.lower().replace("_", "-"): v for k, v in seen.headers}
    assert normalised["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.parametrize(("method", "path"), [("GET", "/orders/1"), ("POST", "/orders")])
async def test_an_absolute_form_target_does_not_set_the_forwarded_host(
    redis_url: str, capture: Capture, method: str, path: str
) -> None:
    """``GET http://evil.example/orders/1``: the host a client named in the
    request line is not the Host it sent; X-Forwarded-Host is the Host."""
    settings = settings_for(redis_url, capture.url)
    head = (
        f"{method} http://evil.example{path} HTTP/1.1\r\nHost: good.example\r\n"
        "Content-Length: 1\r\nConnection: close"
    ).encode()
    async with (
        running_gateway(settings) as gateway,
        running_worker(settings, "orders", Relay(capture.url, 2.0)),
    ):
        status, _ = await raw_request(gateway, head, b"x")
        assert status in (200, 202)
        await wait_until(lambda: received(capture, 1), what="the request at the service")
    headers = dict(capture.seen[0].headers)
    assert headers["X-Forwarded-Host"] == "good.example"
    assert all("evil" not in v for v in headers.values())
