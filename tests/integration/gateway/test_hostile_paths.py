"""Paths as a hostile client sends them: encoded, double-encoded, dot segments,
over raw sockets where aiohttp's client would refuse; the job API's methods and ids.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from yarl import URL

from tests.conftest import RunningGateway, running_gateway, running_worker, wait_until
from tests.integration.gateway.hostile import (
    Capture,
    raw_request,
    received,
    settings_for,
    stream_lengths,
)
from tidegate.envelope import Job
from tidegate.keys import new_job_id
from worker.relay import Relay

pytestmark = pytest.mark.both_loops
"""Hostile clients against the server as production runs it (uvloop) and on asyncio's loop."""

BAD_SEGMENTS = ["..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e", "%252e%252e", "%25%32%65%25%32%65",
                "%2f", "%2F", "%5c", "%5C", "%252F", "a%2fb", "%00", "x%00", "%0a", "%zz",
                "%", "..;", ".;", "..;x=1", "%2e%2e;", "..%3B", "..%3b", ".%3B",
                "%2E%2E%253B"]  # fmt: skip

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
        await wait_until(lambda: received(capture, 4), what="the upstream to see every request")
    queued = sorted(s.raw_path for s in capture.seen if s.method == "POST")
    assert queued == sorted(cases.values())
    (proxied,) = [s for s in capture.seen if s.method == "GET"]
    assert (proxied.raw_path, proxied.raw_query) == ("/base/orders/7", "q=%2F")
    queries = {s.raw_query for s in capture.seen if s.method == "POST"}
    assert "x=%2F&y=%26" in queries  # forwarded as sent, not decoded


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
    ("method", "path"),
    [
        ("GET", "//_tidegate/jobs/orders.AAAAAAAAAAAAAAAAAAAAAAAA"),
        ("DELETE", "//_tidegate//jobs/x"),
        ("GET", "/%5Ftidegate/jobs/x/result"),
        ("GET", "/_tidegate/jobs/x//events"),
        ("GET", "///_tidegate/openapi.json"),
    ],
)
async def test_another_spelling_of_a_job_api_path_is_not_found(
    gateway: RunningGateway, method: str, path: str
) -> None:
    """With one of the API's own methods, a path that only canonicalises to
    an API path is a 404: not a 405 whose Allow lists the very method used
    (as before), and not the API served under a second name. Raw: a client
    library would merge the slashes."""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close".encode()
    status, body = await raw_request(gateway, head)
    assert status == 404, body
    assert json.loads(body)["type"].endswith("not-found")  # job-not-found: %5F is "_"
