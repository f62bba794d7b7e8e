"""Route matching: prefixes on segment boundaries, first match in config order."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from gateway.routing import Router
from tidegate.paths import under_prefix as prefix_matches
from tidegate.settings import RouteSettings, parse_settings


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


def _scan(routes: Sequence[RouteSettings], method: str, path: str) -> RouteSettings | None:
    """The definition: the first route in config order whose prefix and method match."""
    for route in routes:
        if method in route.match.methods and prefix_matches(route.match.path_prefix, path):
            return route
    return None


@pytest.mark.parametrize("seed", range(20))
def test_the_tree_finds_what_a_scan_in_config_order_finds(seed: int) -> None:
    """Random route tables (nested, repeated and trailing-slash prefixes, the
    root, method mixes) against random paths, above and beside them."""
    rng = random.Random(seed)
    words = ["a", "b", "orders", "v1", "x-y", "7"]
    methods = ["GET", "POST", "PUT", "DELETE"]

    def path(depth: int) -> str:
        return "/" + "/".join(rng.choice(words) for _ in range(depth))

    raw = []
    for n in range(rng.randint(1, 40)):
        prefix = "/" if rng.random() < 0.05 else path(rng.randint(1, 3))
        if prefix != "/" and rng.random() < 0.2:
            prefix += "/"
        chosen = rng.sample(methods, rng.randint(1, len(methods)))
        raw.append({"name": f"r{n}", "match": {"path_prefix": prefix, "methods": chosen}})
    routes = parse_settings({"routes": raw}, env={}).routes
    router = Router(routes)
    probes = [path(rng.randint(0, 4)) for _ in range(300)]
    probes += [p + "/" for p in probes[:50]] + [p + "x" for p in probes[50:100]]
    for probe in probes:
        for method in methods:
            assert router.match(method, probe) == _scan(routes, method, probe), (method, probe)


def test_a_thousand_routes_find_the_last_one() -> None:
    raw = [
        {"name": f"r{n}", "match": {"path_prefix": f"/svc-{n}/api", "methods": ["POST"]}}
        for n in range(1000)
    ]
    routes = parse_settings({"routes": raw}, env={}).routes
    router = Router(routes)
    assert router.match("POST", "/svc-999/api/orders/7") == routes[-1]
    assert router.match("POST", "/svc-999/apix") is None
    assert router.match("GET", "/svc-999/api") is None
