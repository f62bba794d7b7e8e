"""Proxy routes: forward straight to the upstream, streaming both ways.

For reads and calls that need no leveling. Nothing is queued: the request
body streams to the upstream as it arrives (still bounded by the route's
``max_body_bytes``), and the upstream's body streams back as it is produced.
Redirects are passed to the client, not followed; content encodings are passed
through untouched. An unreachable upstream is a 502, a slow one a 504.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway import problems
from gateway.context import Gateway
from gateway.http_headers import forward_request_headers, response_headers
from tidegate.settings import RouteSettings

_PROXY_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=60.0)


class _Oversized(Exception):
    pass


async def _limited(request: web.Request, limit_bytes: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in request.content.iter_chunked(65536):
        total += len(chunk)
        if total > limit_bytes:
            raise _Oversized
        yield chunk


async def forward(gw: Gateway, route: RouteSettings, request: web.Request) -> web.StreamResponse:
    declared = request.content_length
    if declared is not None and declared > route.max_body_bytes:
        gw.metrics.rejected.labels(route.name, "body_too_large").inc()
        return problems.body_too_large(route.name, route.max_body_bytes)
    assert route.upstream is not None  # settings guarantee it for proxy routes
    url = route.upstream.rstrip("/") + request.rel_url.raw_path_qs
    body = _limited(request, route.max_body_bytes) if request.body_exists else None
    response: web.StreamResponse | None = None
    try:
        async with gw.http.request(
            request.method,
            url,
            headers=forward_request_headers(request),
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
    if isinstance(error, _Oversized) or isinstance(cause, _Oversized):
        gw.metrics.rejected.labels(route.name, "body_too_large").inc()
        return problems.body_too_large(route.name, route.max_body_bytes)
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        gw.metrics.proxied.labels(route.name, "timeout").inc()
        return problems.problem(
            504,
            "upstream-timeout",
            "Upstream timed out",
            f"{route.upstream} did not answer in time.",
        )
    if isinstance(error, aiohttp.ClientError):
        gw.metrics.proxied.labels(route.name, "error").inc()
        return problems.problem(
            502, "upstream-unreachable", "Upstream unreachable", f"{route.upstream}: {error}"
        )
    raise error
