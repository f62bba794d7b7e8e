"""W3C trace context from the client to the service: a valid one goes on with
the job (queued routes, through a worker's relay) or with the proxied call;
an invalid or hostile one is dropped: never stored, never forwarded, never a
4xx or 5xx. Raw requests, so that every byte is the attacker's choice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.conftest import RunningGateway, running_gateway, running_worker, wait_until
from tests.integration.gateway.hostile import Capture, Seen, raw_request, settings_for
from tidegate.envelope import Job
from tidegate.keys import RouteKeys
from tidegate.settings import Settings
from worker.relay import Relay

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
VALID = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def settings(redis_url: str, capture: Capture) -> Settings:
    return settings_for(redis_url, capture.url)


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    async with running_gateway(settings) as running:
        yield running


def head(method: str, path: str, *extra: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: t", b"Connection: close", *extra]
    if method == "POST":
        lines.append(b"Content-Length: 2")
    return b"\r\n".join(lines)


async def send(
    gateway: RunningGateway, settings: Settings, capture: Capture, route: str, *extra: bytes
) -> Seen:
    """One request on a route ("queued": relayed by a worker; "proxy"), as the
    service saw it."""
    before = len(capture.seen)
    if route == "proxy":
        status, _ = await raw_request(gateway, head("GET", "/orders/1", *extra))
        assert status == 200
    else:
        async with running_worker(settings, "orders", Relay(capture.url, 2.0)):
            status, body = await raw_request(gateway, head("POST", "/orders/x", *extra), b"{}")
            assert status == 202, body
            await wait_until(lambda: len(capture.seen) > before, what="the relayed request")
    (seen,) = capture.seen[before:]
    return seen


def trace_headers(seen: Seen) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in seen.headers:
        if name.lower() in ("traceparent", "tracestate"):
            out.setdefault(name.lower(), []).append(value)
    return out


async def stored_bytes(redis_url: str) -> bytes:
    """Everything the orders route's stream holds, as one blob."""
    client: Redis = Redis.from_url(redis_url)
    try:
        entries = await client.xrange(RouteKeys("orders").requests) or []
    finally:
        await client.aclose()
    return b"".join(
        bytes(k) + bytes(v)  # type: ignore[arg-type]
        for _, fields in entries
        for k, v in (fields or {}).items()
    )


@pytest.mark.parametrize("route", ["queued", "proxy"])
async def test_a_valid_context_reaches_the_service(
    gateway: RunningGateway, settings: Settings, capture: Capture, route: str
) -> None:
    seen = await send(
        gateway,
        settings,
        capture,
        route,
        b"traceparent: " + VALID.encode(),
        b"tracestate: rojo=00f067aa0ba902b7",
        b"tracestate: congo=t61rcWkgMzE",
    )
    assert trace_headers(seen) == {
        "traceparent": [VALID],
        "tracestate": ["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
    }


HOSTILE_TRACEPARENTS = [
    b"traceparent: " + VALID.upper().encode(),
    b"traceparent: " + VALID[:-1].encode(),
    b"traceparent: " + VALID.encode() + b"-extra",
    b"traceparent: ff" + VALID[2:].encode(),
    b"traceparent: 00-" + b"0" * 32 + b"-00f067aa0ba902b7-01",
    b"traceparent: 00-" + TRACE.encode() + b"-" + b"0" * 16 + b"-01",
    b"traceparent: " + VALID.encode().replace(b"4bf9", b"\xff\xfe"),  # not UTF-8
    b"traceparent: " + VALID.encode().replace(b"4bf9", "\u0664".encode() * 2),
    b"traceparent: " + VALID.encode() + b"\r\ntraceparent: " + VALID.encode(),  # two
    b"traceparent: " + b"a" * 7000,
    b"traceparent: <script>alert(1)</script>",
    b"TRACEPARENT: " + VALID.encode()[:-2] + b"zz",
]


@pytest.mark.parametrize("route", ["queued", "proxy"])
@pytest.mark.parametrize("header", HOSTILE_TRACEPARENTS)
async def test_an_invalid_traceparent_is_dropped_not_refused(
    gateway: RunningGateway,
    settings: Settings,
    capture: Capture,
    redis_url: str,
    route: str,
    header: bytes,
) -> None:
    seen = await send(gateway, settings, capture, route, header, b"tracestate: rojo=1")
    assert trace_headers(seen) == {}  # and its tracestate with it
    raw_value = header.split(b": ", 1)[1][:40]
    assert raw_value not in await stored_bytes(redis_url)


HOSTILE_TRACESTATES = [
    b"tracestate: Rojo=1",
    b"tracestate: rojo=1,rojo=2",
    b"tracestate: rojo",
    b"tracestate: rojo=caf\xc3\xa9",
    b"tracestate: rojo=\xff",
    b"tracestate: " + b",".join(b"k%d=v" % i for i in range(33)),
    b"tracestate: k=" + b"v" * 300,
    b"tracestate: " + b"x" * 7000,
]


@pytest.mark.parametrize("route", ["queued", "proxy"])
@pytest.mark.parametrize("header", HOSTILE_TRACESTATES)
async def test_an_invalid_tracestate_is_dropped_the_traceparent_kept(
    gateway: RunningGateway, settings: Settings, capture: Capture, route: str, header: bytes
) -> None:
    seen = await send(gateway, settings, capture, route, b"traceparent: " + VALID.encode(), header)
    assert trace_headers(seen) == {"traceparent": [VALID]}


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        ((("traceparent", VALID),), {"traceparent": [VALID]}),
        ((("traceparent", VALID.upper()), ("tracestate", "rojo=1")), {}),
        ((("traceparent", VALID), ("traceparent", VALID)), {}),
        ((("traceparent", VALID), ("tracestate", "rojo=1,rojo=1")), {"traceparent": [VALID]}),
    ],
)
async def test_the_relay_checks_a_context_stored_by_an_older_gateway(
    gateway: RunningGateway,
    settings: Settings,
    capture: Capture,
    stored: tuple[tuple[str, str], ...],
    sent: dict[str, list[str]],
) -> None:
    """Gateways before trace context support stored the headers as sent."""
    ledger = gateway.gw.ledger
    route = settings.route("orders")
    job = Job(ledger.new_job_id(route), "orders", "POST", "/orders/x", headers=stored, body=b"{}")
    await ledger.admit(route, job)
    async with running_worker(settings, "orders", Relay(capture.url, 2.0)):
        await wait_until(lambda: len(capture.seen) == 1, what="the relayed request")
    assert trace_headers(capture.seen[0]) == sent
