"""Route matching: the first route whose path prefix and method match wins.

A prefix matches on a segment boundary: ``/orders`` takes ``/orders``,
``/orders/7`` and ``/orders?x``, not ``/ordersfoo``. Routes are tried in the
order of the config file, so an operator can put a narrow route before a
broad one.
"""

from __future__ import annotations

from collections.abc import Sequence

from tidegate.settings import RouteSettings


def prefix_matches(prefix: str, path: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix) or path == prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


class Router:
    """Finds the route for a request."""

    def __init__(self, routes: Sequence[RouteSettings]) -> None:
        self._routes = tuple(routes)

    def match(self, method: str, path: str) -> RouteSettings | None:
        for route in self._routes:
            if method in route.match.methods and prefix_matches(route.match.path_prefix, path):
                return route
        return None
