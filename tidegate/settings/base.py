"""What every settings section shares: strict parsing, names, the listen format."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict

STRICT = ConfigDict(extra="forbid")

ROUTE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$")
RESERVED_PREFIX = "/_tidegate"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ENV_PREFIX = "TIDEGATE_"


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:8080`` for IPv6; port 0 picks a free one)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def checked_name(value: str) -> str:
    """Route and tenant names: they become parts of Redis keys."""
    if not ROUTE_NAME.match(value):
        raise ValueError("must be 1-48 characters of [a-z0-9-], not starting or ending in -")
    return value


Priority = Literal["high", "normal", "low"]
PRIORITIES: tuple[str, ...] = ("high", "normal", "low")
