"""Proxy routes: forward straight to the upstream, streaming both ways.

For reads and calls that need no leveling. Nothing is queued: the request
body streams to the upstream as it arrives (still bounded by the route's
``max_body_bytes`` and ``gateway.body_timeout_s``), and the upstream's body
streams back as it is produced. Redirects are passed to the client, not
followed; content encodings are passed through untouched. An unreachable
upstream is a 502, a slow one a 504; neither answer names the upstream (the
log does, without its credentials).

What goes on the wire is the upstream's base URL followed by the request's
canonical path (``tidegate.paths``: no dot segment, no encoded slash), byte
for byte (``encoded=True``: no client-side re-quoting or dot resolution), and
the query as the client sent it. So nothing forwarded resolves outside the
upstream's base path.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway import problems
from gateway.body import body_chunks, refuse_declared
from gateway.context import Gateway
from gateway.http_headers import NO_CREDENTIALS, response_headers
from gateway.rejections import Rejection
from tidegate.redact import redact_url
from tidegate.settings import RouteSettings

log = logging.getLogger(__name__)

_PROXY_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=60.0)


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
    body = (
        body_chunks(request, route.name, route.max_body_bytes, gw.settings.gateway.body_timeout_s)
        if request.body_exists
        else None
    )
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
            response = web.StreamResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers=CIMultiDict(response_headers(upstream.headers.items())),
            )
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            gw.metrics.proxied.labels(route.name, f"{upstream.status // 100}xx").inc()
            return response
    except Exception as e:
        if response is not None and response.prepared:
            raise  # mid-stream: the status is sent; aiohttp closes the connection
        return _problem_for(gw, route, e)


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
