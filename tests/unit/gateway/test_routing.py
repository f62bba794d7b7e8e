"""Route matching: prefixes on segment boundaries, first match in config order."""

from __future__ import annotations

from gateway.routing import Router
from tidegate.paths import under_prefix as prefix_matches
from tidegate.settings import parse_settings


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
