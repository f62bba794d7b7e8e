"""Route matching: the first route whose path prefix and method match wins.

Paths are matched in their canonical form (``tidegate.paths``), the same form
that is forwarded. A prefix matches on a segment boundary: ``/orders`` takes
``/orders``, ``/orders/7`` and ``/orders?x``, not ``/ordersfoo``. Routes are
tried in the order of the config file, so an operator can put a narrow route
before a broad one.

The lookup does not grow with the number of routes: prefixes are kept in a
tree of path segments, and each node knows, per method, the earliest route
(in config order) whose prefix ends there. A path walks down the tree one
segment at a time; every node it passes holds prefixes it lies under, so the
answer is the earliest of those nodes' routes for the method: the same route
a scan in config order would find, in time proportional to the path's depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tidegate.settings import RouteSettings


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    first: dict[str, tuple[int, RouteSettings]] = field(default_factory=dict)
    """Per method: the earliest route (config index, route) whose prefix ends here."""


def _segments(prefix: str) -> list[str]:
    """A prefix's segments; ``/a/b`` and ``/a/b/`` both take ``/a/b`` and
    everything under it, and ``/`` takes every path."""
    inner = prefix.strip("/")
    return inner.split("/") if inner else []


class Router:
    """Finds the route for a request."""

    def __init__(self, routes: Sequence[RouteSettings]) -> None:
        self._root = _Node()
        for index, route in enumerate(routes):
            node = self._root
            for segment in _segments(route.match.path_prefix):
                node = node.children.setdefault(segment, _Node())
            for method in route.match.methods:
                node.first.setdefault(method, (index, route))

    def match(self, method: str, path: str) -> RouteSettings | None:
        """The route for a canonical ``path``, or None."""
        node = self._root
        best = node.first.get(method)
        for segment in path[1:].split("/"):
            child = node.children.get(segment)
            if child is None:
                break
            node = child
            found = node.first.get(method)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        return best[1] if best is not None else None
