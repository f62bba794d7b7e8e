"""Header handling shared by every forwarding path of the gateway.

Hop-by-hop headers are stripped (``tidegate.http``); the gateway adds
``X-Forwarded-For/Proto/Host`` so the service behind it sees the original
client. ``Prefer`` (RFC 7240) is parsed here too: it is addressed to
the gateway and is not forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from tidegate.http import strip_headers

# Not hop-by-hop, but recomputed or consumed by the gateway itself.
_REQUEST_DROP = frozenset({"host", "content-length", "expect", "prefer", "idempotency-key"})
_RESPONSE_DROP = frozenset({"content-length", "date", "server"})


_FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})


def forward_request_headers(request: web.Request) -> list[tuple[str, str]]:
    """The client's headers as the upstream should see them."""
    headers = request.headers
    pairs = strip_headers(headers.items(), _REQUEST_DROP | _FORWARDED)
    prior = headers.get("X-Forwarded-For")
    peer = request.remote or "unknown"
    pairs.append(("X-Forwarded-For", f"{prior}, {peer}" if prior else peer))
    pairs.append(("X-Forwarded-Proto", headers.get("X-Forwarded-Proto", request.scheme)))
    pairs.append(("X-Forwarded-Host", headers.get("X-Forwarded-Host", request.host)))
    return pairs


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """An upstream's response headers as the client should see them."""
    return strip_headers(headers, _RESPONSE_DROP)


def header_bytes(raw_headers: tuple[tuple[bytes, bytes], ...]) -> int:
    """Size of the header block as sent (name, ": ", value, CRLF)."""
    return sum(len(k) + len(v) + 4 for k, v in raw_headers)


@dataclass(frozen=True)
class Preferences:
    """The preferences of RFC 7240 that the gateway honours."""

    respond_async: bool = False
    wait_s: float | None = None


NO_PREFERENCES = Preferences()


def parse_prefer(values: Iterable[str]) -> Preferences:
    """Parse every ``Prefer`` header; unknown or malformed preferences are ignored,
    as RFC 7240 section 2 asks."""
    respond_async = False
    wait_s: float | None = None
    for value in values:
        for item in value.split(","):
            token, _, param = item.split(";")[0].strip().partition("=")
            name = token.strip().lower()
            if name == "respond-async":
                respond_async = True
            elif name == "wait":
                try:
                    seconds = float(param.strip().strip('"'))
                except ValueError:
                    continue
                if seconds >= 0:
                    wait_s = seconds
    return Preferences(respond_async=respond_async, wait_s=wait_s)
