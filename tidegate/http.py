"""HTTP rules shared by the gateway (forwarding) and the relay (replay).

Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection and never
travel further, and neither does any header that a ``Connection`` header
names. An upstream is named by an ``http`` or ``https`` URL with a host
(``upstream_parts``: the one check, for the settings and the client).
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Iterable

from tidegate.paths import UnsafePath, canonical_path

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def strip_headers(
    headers: Iterable[tuple[str, str]], drop: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """Headers without the hop-by-hop ones, those a Connection header names,
    and the lower-case names in ``drop``."""
    pairs = [(k, v, k.lower()) for k, v in headers]
    gone = dropping(drop if isinstance(drop, frozenset) else frozenset(drop))
    for _, value, lower in pairs:
        if lower == "connection":
            gone = gone.union(token.strip().lower() for token in value.split(","))
    return [(k, v) for k, v, lower in pairs if lower not in gone]


@functools.lru_cache(maxsize=64)
def dropping(drop: frozenset[str]) -> frozenset[str]:
    """The hop-by-hop headers and ``drop``, united once per set (a hot path
    strips with a handful of fixed sets)."""
    return HOP_BY_HOP | drop


def upstream_parts(url: str) -> urllib.parse.SplitResult:
    """An upstream's URL, split; ValueError (not naming the URL, which may
    hold credentials) unless it is http:// or https:// with a host."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an upstream is an http:// or https:// URL with a host")
    if parts.path:
        try:
            canonical_path(parts.path)
        except UnsafePath as e:
            raise ValueError(f"an upstream's base path may not hold {e}") from None
    return parts
