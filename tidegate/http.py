"""HTTP header rules shared by the gateway (forwarding) and the relay (replay).

Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection and never
travel further, and neither does any header that a ``Connection`` header
names.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    gone = HOP_BY_HOP.union(drop)
    for _, value, lower in pairs:
        if lower == "connection":
            gone = gone.union(token.strip().lower() for token in value.split(","))
    return [(k, v) for k, v, lower in pairs if lower not in gone]
