"""Proxy routes: forward straight to the upstream, streaming both ways.

For reads and calls that need no leveling. Nothing is queued: the request
body streams to the upstream as it arrives, and the upstream's body streams
back as it is produced, both bounded by the route's ``max_body_bytes`` and
``gateway.body_timeout_s``. A body (either way) that declares at most
``WHOLE_BODY_BYTES`` is read whole and sent in one write instead (most API
calls: no chunk loop, one write instead of three). A client that goes away
while its answer is written ends the exchange quietly. Redirects are passed
to the client, not followed; content encodings are passed through untouched.
An unreachable upstream is a 502, a slow one a 504; neither answer names the
upstream (the log does, without its credentials). So is a malformed answer
(``tidegate.upstream`` parses strictly and never reuses a connection that
may be out of step). An upstream that fails after the answer's head went out
cuts the client's connection: its answer can never look complete.

Requests with a small body (or none), most of them, go through the route's
own lean client (``tidegate.upstream``; a third of aiohttp's client CPU per
call); a request whose body streams goes through aiohttp's client, which
sends as it reads: with the client's ``Content-Length`` when it declared one
(chunked only when the client sent chunked), and none of the headers
aiohttp's client would add on its own. Answers keep the service's headers as
sent (``gateway.passthrough``).

What goes on the wire is the upstream's base URL followed by the request's
canonical path (``tidegate.paths``: no dot segment, no encoded slash), byte
for byte (``encoded=True``: no client-side re-quoting or dot resolution), and
the query as the client sent it. So nothing forwarded resolves outside the
upstream's base path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway import problems
from gateway.body import body_chunks, read_body, refuse_declared
from gateway.context import CONNECT_TIMEOUT_S, Gateway
from gateway.http_headers import NO_CREDENTIALS, response_headers
from gateway.passthrough import RelayedStream, relayed
from gateway.rejections import Kind, Rejection
from tidegate import tracing
from tidegate.redact import redact_url
from tidegate.settings import RouteSettings
from tidegate.upstream import UpstreamUnreachable

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 60.0
"""Longest wait for the upstream's answer to begin, and then for each read of its body."""

_PROXY_TIMEOUT = aiohttp.ClientTimeout(
    total=None, connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S
)

_NOT_ADDED = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
"""Headers aiohttp's client would add that the client did not send."""

WHOLE_BODY_BYTES = 64 * 1024
"""Answers declaring at most this many bytes are read whole, then sent at once."""


def upstream_url(base: str, path: str, raw_query: str) -> URL:
    """The URL a request is forwarded to, exactly as it will be sent."""
    target = base.rstrip("/") + path + (f"?{raw_query}" if raw_query else "")
    return URL(target, encoded=True)


async def forward(
    gw: Gateway,
    route: RouteSettings,
    request: web.Request,
    path: str,
    credentials: frozenset[str] = NO_CREDENTIALS,
) -> web.StreamResponse:
    refuse_declared(request, route.name, route.max_body_bytes)  # before connecting upstream
    declared = request.content_length
    if request.body_exists and (declared is None or declared > WHOLE_BODY_BYTES):
        return await _forward_streaming(gw, route, request, path, credentials)
    timeout_s = gw.settings.gateway.body_timeout_s
    body = b""
    if request.body_exists:  # small: read whole, send once
        body = await read_body(request, route.name, route.max_body_bytes, timeout_s)
    query = request.rel_url.raw_query_string
    response: web.StreamResponse | None = None
    try:
        async with gw.upstreams[route.name].exchange(
            request.method,
            path + (f"?{query}" if query else ""),
            gw.forwarding.request_headers(
                request, credentials, proxied=True, continued=tracing.current()
            ),
            body,
            head_timeout_s=READ_TIMEOUT_S,
            read_timeout_s=READ_TIMEOUT_S,
            whole_bytes=WHOLE_BODY_BYTES,
            host=request.headers.get("Host") if route.forwarding.preserve_host else None,
        ) as answer:
            headers = CIMultiDict(route.forwarding.answer_headers(response_headers(answer.headers)))
            if answer.stream is None and _has_body(request.method, answer.status):
                _count(gw, route, answer.status)
                return relayed(answer.status, answer.reason, headers, answer.body)
            response = RelayedStream(status=answer.status, reason=answer.reason, headers=headers)
            await _relay_body(route, request, response, answer.length, answer.stream)
            _count(gw, route, answer.status)
            return response
    except ValueError as e:  # what the client sent cannot be forwarded as it is
        raise Rejection(
            Kind.UNFORWARDABLE,
            "Request cannot be forwarded",
            f"The request cannot be forwarded to route {route.name}'s upstream: {e}.",
        ) from None
    except Exception as e:
        if response is not None and response.prepared:
            return _cut(route, request, response, e)
        return _problem_for(gw, route, e)


def _has_body(method: str, status: int) -> bool:
    """Whether an answer is sent with its body (a HEAD's length is the GET's)."""
    return method != "HEAD" and status not in (204, 304)


async def _relay_body(
    route: RouteSettings,
    request: web.Request,
    response: web.StreamResponse,
    length: int | None,
    chunks: AsyncIterator[bytes] | None,
) -> None:
    """Send the head, then the body as it comes; a client that left ends it quietly."""
    if length is not None:
        response.content_length = length
    try:
        await response.prepare(request)
        if chunks is not None:
            async for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:  # the client went away (aiohttp's own included)
        log.debug("route %s: the client left while its answer was sent", route.name)


async def _forward_streaming(
    gw: Gateway,
    route: RouteSettings,
    request: web.Request,
    path: str,
    credentials: frozenset[str],
) -> web.StreamResponse:
    """A request whose body streams (chunked, or declared over
    ``WHOLE_BODY_BYTES``): through aiohttp's client, which sends as it reads."""
    assert route.upstream is not None  # settings guarantee it for proxy routes
    url = upstream_url(route.upstream, path, request.rel_url.raw_query_string)
    timeout_s = gw.settings.gateway.body_timeout_s
    body = body_chunks(request, route.name, route.max_body_bytes, timeout_s)
    headers = gw.forwarding.request_headers(
        request,
        credentials,
        proxied=True,
        host=route.forwarding.preserve_host,
        continued=tracing.current(),
    )
    if request.content_length is not None:  # sent with its length, not chunked
        headers.append(("Content-Length", str(request.content_length)))
    response: web.StreamResponse | None = None
    try:
        async with gw.http.request(
            request.method,
            url,
            headers=headers,
            data=body,
            allow_redirects=False,
            timeout=_PROXY_TIMEOUT,
            skip_auto_headers=_NOT_ADDED,
        ) as upstream:
            response = RelayedStream(
                status=upstream.status,
                reason=upstream.reason,
                headers=CIMultiDict(
                    route.forwarding.answer_headers(_raw_headers(upstream.raw_headers))
                ),
            )
            await _relay_body(
                route, request, response, upstream.content_length, upstream.content.iter_any()
            )
            _count(gw, route, upstream.status)
            return response
    except Exception as e:
        if response is not None and response.prepared:
            return _cut(route, request, response, e)
        return _problem_for(gw, route, e)


def _raw_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[str, str]]:
    """aiohttp client's headers as the lean client reads them: names as
    Latin-1, values as UTF-8 with other bytes kept (``surrogateescape``)."""
    return response_headers(
        (k.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for k, v in raw
    )


def _cut(
    route: RouteSettings, request: web.Request, response: web.StreamResponse, error: Exception
) -> web.StreamResponse:
    """The upstream failed after the answer's head went out: the client's
    connection is dropped, so its answer cannot look complete (a chunked body
    is never terminated, a declared length never reached) and nothing else
    can be written after it."""
    log.warning(
        "route %s: the upstream failed mid-answer (%s); cut the client off", route.name, error
    )
    if request.transport is not None:
        request.transport.abort()
    return response


def _count(gw: Gateway, route: RouteSettings, status: int) -> None:
    gw.metrics.proxied_as(route.name, status).inc()


def _problem_for(gw: Gateway, route: RouteSettings, error: Exception) -> web.Response:
    """Translate a forwarding failure into the client's answer."""
    cause = error.__cause__ if isinstance(error, aiohttp.ClientError) else None
    if isinstance(error, Rejection):
        raise error
    if isinstance(cause, Rejection):  # the body was refused while streaming
        raise cause from None
    upstream = redact_url(route.upstream or "")
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        gw.metrics.proxied.labels(route.name, "timeout").inc()
        log.warning("route %s: upstream %s timed out", route.name, upstream)
        return problems.problem(
            504,
            "upstream-timeout",
            "Upstream timed out",
            f"The upstream of route {route.name} did not answer in time.",
        )
    if isinstance(error, aiohttp.ClientError | UpstreamUnreachable):
        gw.metrics.proxied.labels(route.name, "error").inc()
        log.warning("route %s: upstream %s unreachable: %s", route.name, upstream, error)
        return problems.problem(
            502,
            "upstream-unreachable",
            "Upstream unreachable",
            f"The upstream of route {route.name} could not be reached.",
        )
    raise error
