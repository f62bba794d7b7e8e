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
upstream (the log does, without its credentials).

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
from gateway.context import Gateway
from gateway.http_headers import NO_CREDENTIALS, response_headers
from gateway.rejections import Rejection
from tidegate.redact import redact_url
from tidegate.settings import RouteSettings

log = logging.getLogger(__name__)

_PROXY_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=60.0)

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
    assert route.upstream is not None  # settings guarantee it for proxy routes
    url = upstream_url(route.upstream, path, request.rel_url.raw_query_string)
    timeout_s = gw.settings.gateway.body_timeout_s
    body: bytes | AsyncIterator[bytes] | None = None
    if request.body_exists:
        declared = request.content_length
        if declared is not None and declared <= WHOLE_BODY_BYTES:  # small: read whole, send once
            body = await read_body(request, route.name, route.max_body_bytes, timeout_s)
        else:
            body = body_chunks(request, route.name, route.max_body_bytes, timeout_s)
    response: web.StreamResponse | None = None
    try:
        async with gw.http.request(
            request.method,
            url,
            headers=gw.forwarding.request_headers(request, credentials),
            data=body,
            allow_redirects=False,
            timeout=_PROXY_TIMEOUT,
        ) as upstream:
            headers = CIMultiDict(response_headers(upstream.headers.items()))
            length = upstream.content_length
            if (
                length is not None
                and length <= WHOLE_BODY_BYTES
                and request.method != "HEAD"  # its length is the GET's, its body empty
                and upstream.status not in (204, 304)
            ):
                whole = await upstream.read()
                _count(gw, route, upstream.status)
                headers.popall("Content-Length", None)
                return web.Response(
                    status=upstream.status, reason=upstream.reason, headers=headers, body=whole
                )
            response = web.StreamResponse(
                status=upstream.status, reason=upstream.reason, headers=headers
            )
            if length is not None:
                response.content_length = length
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:  # the client went away (aiohttp's own included)
                log.debug("route %s: the client left while its answer was sent", route.name)
            _count(gw, route, upstream.status)
            return response
    except Exception as e:
        if response is not None and response.prepared:
            raise  # mid-stream: the status is sent; aiohttp closes the connection
        return _problem_for(gw, route, e)


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
    if isinstance(error, aiohttp.ClientError):
        gw.metrics.proxied.labels(route.name, "error").inc()
        log.warning("route %s: upstream %s unreachable: %s", route.name, upstream, error)
        return problems.problem(
            502,
            "upstream-unreachable",
            "Upstream unreachable",
            f"The upstream of route {route.name} could not be reached.",
        )
    raise error
