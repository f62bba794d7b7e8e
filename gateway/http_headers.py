"""Header handling shared by every forwarding path of the gateway.

What a client sends is checked before anything else reads it: a header value
that is not UTF-8 is refused (400) on its own, so it can never reach a batch
of other clients' admissions or a log line.

What is forwarded: the client's headers without the hop-by-hop ones
(``tidegate.http``), without those the gateway consumes (``Tidegate-*``;
on queued routes ``Prefer`` and ``Idempotency-Key`` too, which a proxy route
passes on to its service) and without the credentials the client
used to authenticate to the gateway (``X-Api-Key``, and ``Authorization`` when
it carried the tenant's key): those are never stored with a job or sent to a
service. ``X-Forwarded-For/-Proto/-Host`` are set by the gateway from what it
saw; a client's own values are kept and extended only when the peer is one of
``gateway.trusted_proxies``, and the other forwarding headers (``Forwarded``,
``X-Real-IP``, ``X-Forwarded-Port``, ``X-Forwarded-Prefix``) reach the service
only from such a proxy. Names are matched after normalising case and ``_``
to ``-`` (``X_Forwarded_For`` is ``X-Forwarded-For``), as the servers behind
do. ``traceparent`` and ``tracestate`` go on only as ``tidegate.trace_context``
finds them valid (a queued job keeps them among its headers), never as sent.
``Prefer`` (RFC 7240) is parsed here too.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiohttp import web

from gateway.rejections import Kind, Rejection
from tidegate import trace_context
from tidegate.http import dropping, strip_headers
from tidegate.trace_context import TraceContext

# Not hop-by-hop, but recomputed or consumed by the gateway itself.
_REQUEST_DROP = frozenset(
    {
        "host",
        "content-length",
        "expect",
        "prefer",
        "idempotency-key",
        "tidegate-priority",
        "tidegate-callback",
    }
    | trace_context.HEADERS  # forwarded only as checked (below)
)
_RESPONSE_DROP = frozenset({"content-length", "date", "server"})
_QUEUED_ONLY = frozenset({"prefer", "idempotency-key"})
"""Consumed by the gateway on queued routes (the wait, the job's identity);
on a proxy route they are the service's, and go on to it."""

_SET_BY_GATEWAY = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
_FROM_PROXIES_ONLY = frozenset({"forwarded", "x-real-ip", "x-forwarded-port", "x-forwarded-prefix"})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NO_CREDENTIALS: frozenset[str] = frozenset()


@functools.cache
def _dropped(trusted: bool, credentials: frozenset[str], proxied: bool) -> frozenset[str]:
    """The headers not forwarded; a handful of combinations, built once each."""
    drop = _REQUEST_DROP | _SET_BY_GATEWAY | credentials
    if proxied:
        drop -= _QUEUED_ONLY
    return drop if trusted else drop | _FROM_PROXIES_ONLY


def check_header_values(request: web.Request) -> None:
    """Refuse a request with a header value that is not UTF-8 (aiohttp hands
    such bytes over as lone surrogates, which nothing downstream can encode).
    The trace context headers are the exception: an invalid one is dropped,
    never refused (W3C Trace Context), and ``trace_context.parse`` takes
    nothing but ASCII."""
    for name, value in request.headers.items():
        if value.isascii() or name.lower() in trace_context.HEADERS:
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Rejection(
                Kind.BAD_HEADER,
                "Header value is not UTF-8",
                f"The value of header {name} holds bytes that are not UTF-8.",
                header=name,
            ) from None


class Forwarding:
    """Builds the headers a service sees, trusting only the configured proxies."""

    def __init__(self, trusted_proxies: Sequence[str]) -> None:
        self.trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies
        )

    def is_trusted(self, peer: str | None) -> bool:
        if not self.trusted or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def request_headers(
        self,
        request: web.Request,
        credentials: frozenset[str] = NO_CREDENTIALS,
        *,
        proxied: bool = False,
        host: bool = False,
        continued: TraceContext | None = None,
    ) -> list[tuple[str, str]]:
        """The client's headers as the upstream should see them; ``credentials``
        are the lower-case names of headers that authenticated to the gateway;
        ``proxied``: for a proxy route (``Prefer`` and ``Idempotency-Key`` go on);
        ``host``: the client's ``Host`` goes on too (a route that preserves it);
        ``continued``: the gateway's span that continues the client's trace
        (tracing on), passed on instead of the client's context."""
        headers = request.headers
        peer = request.remote or "unknown"
        trusted = self.is_trusted(request.remote)
        drop = _dropped(trusted, credentials, proxied)
        # Matched after normalising (case, '_' for '-'): a WSGI server reads
        # X_Forwarded_For as X-Forwarded-For, so any spelling of a header the
        # gateway sets or drops is that header.
        every = dropping(drop)
        pairs = [
            (k, v)
            for k, v in strip_headers(headers.items(), drop)
            if "_" not in k or k.lower().replace("_", "-") not in every
        ]
        prior = headers.get("X-Forwarded-For") if trusted else None
        proto = headers.get("X-Forwarded-Proto") if trusted else None
        forwarded_host = headers.get("X-Forwarded-Host") if trusted else None
        pairs.append(("X-Forwarded-For", f"{prior}, {peer}" if prior else peer))
        pairs.append(("X-Forwarded-Proto", proto or request.scheme))
        # The Host header, not aiohttp's request.host: for an absolute-form
        # target (GET http://evil/ HTTP/1.1) that is the URL's host.
        client_host = headers.get("Host", "")
        pairs.append(("X-Forwarded-Host", forwarded_host or client_host))
        if host and client_host:
            pairs.append(("Host", client_host))
        if continued is not None:
            pairs += continued.headers()
        elif trace_context.TRACEPARENT in headers:
            trace = trace_context.parse(
                headers.getall(trace_context.TRACEPARENT),
                headers.getall(trace_context.TRACESTATE, ()),
            )
            if trace is not None:
                pairs += trace.headers()
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
