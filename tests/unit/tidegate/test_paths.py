"""The canonical path: every traversal variant refused, honest paths canonical.

Table-driven: encoded, double-encoded, mixed-case, backslash and control
character variants, each in several places of a path.
"""

from __future__ import annotations

import pytest

from tidegate.errors import ConfigError
from tidegate.paths import UnsafePath, canonical_path, under_prefix
from tidegate.settings import parse_settings

DOTS = ["..", ".", "%2e%2e", "%2E%2E", "%2e.", ".%2E", "%2e", "%2E", "%252e%252e", "%252E",
        "%25252e%25252e", "%25%32%65%25%32%65", "%2525%32%65",
        # with path parameters, which servlet containers drop before resolving
        "..;", ".;", "..;x=1", "..;jsessionid=AB12", "%2e%2e;", "%2E%2e;x", "..%3B", "..%3b",
        ".%3Bx", "%2e%2e%3b", "..%253B", "%252e%252e%253b", ".;;", "..;/"]  # fmt: skip
SLASHES = ["%2f", "%2F", "%5c", "%5C", "%252f", "%255C", "%25252F", "a%2fb", "x%5Cy", "\\"]
CONTROLS = ["%00", "a%00b", "%0a", "%0D", "%1f", "%7F", "%2500", "%09",
            "\x00", "a\x00b", "\n", "x\r", "\x1f", "\x7f", "\t", "a\x01b"]  # fmt: skip
MALFORMED = ["%", "%z1", "%1", "a%g0", "%%41"]


def _variants(bad: str) -> list[str]:
    return [f"/{bad}", f"/orders/{bad}", f"/orders/{bad}/x", f"/orders/{bad}/", f"//{bad}//x"]


@pytest.mark.parametrize(
    "path",
    [p for bad in DOTS + SLASHES + CONTROLS + MALFORMED for p in _variants(bad)]
    + ["/exports/..%2forders", "/api/%2e%2e/%2e%2e/secret", "/a\\..\\b", "orders", "", "/é"],
)
def test_refused(path: str) -> None:
    with pytest.raises(UnsafePath):
        canonical_path(path)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/", "/"),
        ("/orders", "/orders"),
        ("/orders/", "/orders/"),
        ("//orders///7", "/orders/7"),
        ("/%6Frders", "/orders"),
        ("/%6f%72ders/%37", "/orders/7"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/100%25", "/100%25"),
        ("/a%20b", "/a%20b"),
        ("/a.b/..c/c..", "/a.b/..c/c.."),
        ("/%2e%2e%2e", "/..."),
        ("/%7e/x", "/~/x"),
        ("/a%3Fb", "/a%3Fb"),
        ("/a;b/c;v=1", "/a;b/c;v=1"),  # path parameters on an honest segment stay
        ("/...;x/.a;", "/...;x/.a;"),
        ("/;x", "/;x"),
    ],
)
def test_canonical(raw: str, canonical: str) -> None:
    assert canonical_path(raw) == canonical
    assert canonical_path(canonical) == canonical  # a fixed point


@pytest.mark.parametrize(
    ("prefix", "path", "inside"),
    [
        ("/orders", "/orders", True),
        ("/orders", "/orders/7", True),
        ("/orders", "/ordersx", False),
        ("/orders", "/order", False),
        ("/api/", "/api/x", True),
        ("/api/", "/api", True),
        ("/api/", "/apix", False),
        ("/", "/anything", True),
    ],
)
def test_under_prefix(prefix: str, path: str, inside: bool) -> None:
    assert under_prefix(prefix, path) is inside


@pytest.mark.parametrize("prefix", ["/a/../b", "/%2e%2e", "/a%2fb", "//orders", "/%6Frders"])
def test_route_prefix_must_be_canonical(prefix: str) -> None:
    raw = {"routes": [{"name": "r", "match": {"path_prefix": prefix}}]}
    with pytest.raises(ConfigError) as e:
        parse_settings(raw, env={})
    assert "routes[0].match.path_prefix" in str(e.value)
