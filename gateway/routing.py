"""Route matching: the first route whose path prefix and method match wins.

Paths are matched in their canonical form (``tidegate.paths``), the same form
that is forwarded. A prefix matches on a segment boundary: ``/orders`` takes
``/orders``, ``/orders/7`` and ``/orders?x``, not ``/ordersfoo``. Routes are
tried in the order of the config file, so an operator can put a narrow route
before a broad one.
"""

from __future__ import annotations

from collections.abc import Sequence

from tidegate.paths import under_prefix
from tidegate.settings import RouteSettings


class Router:
    """Finds the route for a request."""

    def __init__(self, routes: Sequence[RouteSettings]) -> None:
        self._routes = tuple(routes)

    def match(self, method: str, path: str) -> RouteSettings | None:
        """The route for a canonical ``path``, or None."""
        for route in self._routes:
            if method in route.match.methods and under_prefix(route.match.path_prefix, path):
                return route
        return None
