"""Small pure pieces: job ids, envelopes, Prefer, header stripping, route matching."""

from __future__ import annotations

import pytest

from gateway.http_headers import parse_prefer
from gateway.routing import Router
from tidegate.envelope import Job
from tidegate.http import strip_headers
from tidegate.keys import RouteKeys, new_job_id, route_of
from tidegate.paths import under_prefix as prefix_matches
from tidegate.settings import parse_settings


def test_job_ids_are_unique_unguessable_and_name_their_route() -> None:
    ids = {new_job_id("orders") for _ in range(1000)}
    assert len(ids) == 1000
    for job_id in ids:
        assert route_of(job_id) == "orders"
        assert len(job_id.partition(".")[2]) == 24  # 144 random bits


@pytest.mark.parametrize(
    "bad", ["", "orders", "orders.", "Orders.abcdefghijklmnopqrstuvwx", "orders.short", "a.b/c"]
)
def test_malformed_job_ids_have_no_route(bad: str) -> None:
    assert route_of(bad) is None


def test_route_keys_share_a_hash_tag() -> None:
    keys = RouteKeys("orders")
    names = [keys.requests, keys.events, keys.dead, keys.job("j"), keys.result("j")]
    assert all(name.startswith("tg:{orders}:") for name in names)


def test_envelope_round_trips_through_stream_fields() -> None:
    job = Job(
        id=new_job_id("orders"),
        route="orders",
        method="PUT",
        path="/orders/7",
        query="a=1&a=2",
        headers=(("X-A", "1"), ("X-A", "2")),
        body=b"\x00\xffbinary",
        attempt=3,
    )
    fields = {
        k.encode(): (v if isinstance(v, bytes) else str(v).encode())
        for k, v in job.to_fields().items()
    }
    fields[b"deadline_ms"] = b"123"
    back = Job.from_fields("orders", fields)
    assert back == job._replace(deadline_ms=123)
    assert back.header("x-a") == "1"


def test_payload_digest_ignores_headers_but_not_body_or_query() -> None:
    base = Job(id="orders.x", route="orders", method="POST", path="/orders", body=b"a")
    same = Job(
        id="orders.y",
        route="orders",
        method="POST",
        path="/orders",
        body=b"a",
        headers=(("Date", "now"),),
    )
    assert base.payload_digest() == same.payload_digest()
    assert base.payload_digest() != base._replace(body=b"b").payload_digest()
    assert base.payload_digest() != base._replace(query="x=1").payload_digest()


@pytest.mark.parametrize(
    ("values", "respond_async", "wait_s"),
    [
        ([], False, None),
        (["respond-async"], True, None),
        (["respond-async, wait=5"], True, 5.0),
        (["wait=2.5"], False, 2.5),
        (['wait="3"'], False, 3.0),
        (["wait=soon", "return=minimal"], False, None),
        (["RESPOND-ASYNC; foo=bar"], True, None),
        (["wait=-1"], False, None),
    ],
)
def test_prefer_header(values: list[str], respond_async: bool, wait_s: float | None) -> None:
    prefs = parse_prefer(values)
    assert prefs.respond_async is respond_async
    assert prefs.wait_s == wait_s


def test_hop_by_hop_and_connection_named_headers_are_stripped() -> None:
    headers = [
        ("Connection", "keep-alive, X-Secret"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("X-Secret", "s"),
        ("Content-Type", "text/plain"),
        ("Upgrade", "h2c"),
    ]
    assert strip_headers(headers) == [("Content-Type", "text/plain")]
    assert strip_headers([("Host", "a"), ("A", "b")], ["host"]) == [("A", "b")]


def test_prefix_matching_respects_segments() -> None:
    assert prefix_matches("/orders", "/orders")
    assert prefix_matches("/orders", "/orders/7")
    assert not prefix_matches("/orders", "/ordersx")
    assert prefix_matches("/api/", "/api/x")
    assert prefix_matches("/api/", "/api")


def test_router_takes_first_match_by_method() -> None:
    settings = parse_settings(
        {
            "routes": [
                {"name": "w", "match": {"path_prefix": "/orders", "methods": ["POST"]}},
                {
                    "name": "r",
                    "match": {"path_prefix": "/orders", "methods": ["GET"]},
                    "mode": "proxy",
                    "upstream": "http://x",
                },
                {"name": "all", "match": {"path_prefix": "/", "methods": ["POST"]}},
            ]
        },
        env={},
    )
    router = Router(settings.routes)
    assert router.match("POST", "/orders/1").name == "w"  # type: ignore[union-attr]
    assert router.match("GET", "/orders").name == "r"  # type: ignore[union-attr]
    assert router.match("POST", "/other").name == "all"  # type: ignore[union-attr]
    assert router.match("DELETE", "/orders") is None
