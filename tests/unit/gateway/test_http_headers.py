"""Request and response headers: Prefer, hop-by-hop stripping."""

from __future__ import annotations

import pytest

from gateway.http_headers import parse_prefer
from tidegate.http import strip_headers


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
