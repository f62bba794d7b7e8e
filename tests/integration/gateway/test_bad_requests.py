"""One bad request fails alone: poisoned headers, unencodable batches, malformed
requests, and the preferences a request was answered with.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from redis.asyncio import Redis
from yarl import URL

from gateway import app
from gateway.rejections import Kind, for_error
from tests.conftest import RunningGateway, running_gateway
from tests.integration.gateway.hostile import (
    KEY_A,
    Capture,
    raw_request,
    settings_for,
    stream_lengths,
)
from tidegate.envelope import Job
from tidegate.errors import Unencodable
from tidegate.keys import RouteKeys, new_job_id
from tidegate.ledger.admission import Admission, AdmissionQueue, Admitted

pytestmark = pytest.mark.both_loops
"""Hostile clients against the server as production runs it (uvloop) and on asyncio's loop."""


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
    assert all(r.kind is Kind.BAD_HEADER and r.status == 400 for r in refused)
    assert await redis.xlen(RouteKeys("orders").requests) == 2


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


MALFORMED = [
    b"POST /orders HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + KEY_A.encode() + b"\x01\r\n",
    b"POST /orders HTTP/1.1\r\nHost: x\r\nBad Header: " + KEY_A.encode() + b"\r\n",
    b"POST /orders HTTP/1.1\r\nHost: x\r\nX-Api-Key\r\n " + KEY_A.encode() + b"\r\n",
    b"BREW /orders?key=" + KEY_A.encode() + b" HTTP/1.1\r\nHost: x\r\n",
    b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: "
    + KEY_A.encode()
    + b"\r\n",
    b"POST /" + KEY_A.encode() + b"\x00 HTTP/1.1\r\nHost: x\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + KEY_A.encode() + b"\r\n",
]


@pytest.mark.parametrize("head", MALFORMED)
async def test_a_parser_400_quotes_nothing_the_client_sent(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture, head: bytes
) -> None:
    """aiohttp's own 400 quoted the offending line: a key's header included."""
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    status, body = await raw_request(gateway, head.rstrip(b"\r\n"))
    assert status == 400
    assert KEY_A.encode() not in body
    assert json.loads(body)["type"].endswith("/malformed-request")
    assert KEY_A not in caplog.text


BAD_HEADER = b"POST /orders HTTP/1.1\r\nHost: x\r\nBad Header: y"
"""Logged by aiohttp at ERROR (a bad method on a first request only at DEBUG)."""


async def test_malformed_requests_in_a_loop_log_a_bounded_number_of_lines(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    log_filter = app._PARSER_FILTER
    log_filter.clock, before = (lambda: now[0]), log_filter.clock
    log_filter.reset()
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    try:
        for _ in range(3 * app.MALFORMED_LINES_PER_WINDOW):
            assert (await raw_request(gateway, BAD_HEADER))[0] == 400
        lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
        assert len(lines) == app.MALFORMED_LINES_PER_WINDOW
        now[0] += app.MALFORMED_WINDOW_S  # the next window: its first line counts the rest
        assert (await raw_request(gateway, BAD_HEADER))[0] == 400
        lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
        left_out = 2 * app.MALFORMED_LINES_PER_WINDOW
        assert (
            f"({left_out} more malformed request(s) in the last 60 s were not logged)"
            in (lines[-1])
        )
    finally:
        log_filter.clock = before
        log_filter.reset()


@pytest.mark.parametrize(
    ("headers", "first"),
    [
        (f"X-Api-Key: {KEY_A}\r\nContent-Length: 10", b"HTTP/1.1 100 Continue"),
        (f"X-Api-Key: {KEY_A}\r\nContent-Length: 99999999", b"HTTP/1.1 413 "),
        ("X-Api-Key: not-a-key\r\nContent-Length: 10", b"HTTP/1.1 401 "),
        ("Content-Length: 10", b"HTTP/1.1 401 "),
        (f"X-Api-Key: {KEY_A}\r\nContent-Length: 10\r\nX-Odd: \xff", b"HTTP/1.1 400 "),
    ],
)
async def test_expect_100_continue_is_answered_after_the_checks_that_need_no_body(
    redis_url: str, capture: Capture, headers: str, first: bytes
) -> None:
    """Before, 100 Continue went out first, inviting a body that was then
    refused (too large, no key)."""
    settings = settings_for(redis_url, capture.url, tenants=True)
    async with running_gateway(settings) as gateway:
        url = URL(gateway.url("/"))
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            head = f"POST /orders HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n{headers}\r\n\r\n"
            writer.write(head.encode("latin-1"))  # \xff: a byte that is not UTF-8
            line = await asyncio.wait_for(reader.readline(), 20)
            assert line.startswith(first), line
            if first.endswith(b"Continue"):
                await reader.readline()  # the blank line after 100 Continue
                writer.write(b"0123456789")
                answer = await asyncio.wait_for(reader.readline(), 20)
                assert answer.startswith(b"HTTP/1.1 202 "), answer
        finally:
            writer.close()
    assert await stream_lengths(redis_url) == (1 if first.endswith(b"Continue") else 0)


async def test_an_unknown_expectation_is_417(gateway: RunningGateway) -> None:
    head = b"POST /orders HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1"
    head += b"\r\nConnection: close"
    status, body = await raw_request(gateway, head, b"x")
    assert status == 417
    assert json.loads(body)["type"].endswith("/expectation-failed")
