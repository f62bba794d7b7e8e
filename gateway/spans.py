"""The gateway's spans (``tidegate.tracing``), when tracing is on.

A public request is one SERVER span, ``{method} {route prefix}`` once its
route is known (``{method}`` for one refused before; a method outside the
standard ones is ``HTTP``, ``_OTHER``), from the client's ``traceparent``
when it sent a valid one, else the root of a new trace. It wraps the problem
boundary (``app.problem_boundary``), so it lasts until the answer is ready, a
sync route's wait included, and carries the status the client got, refusals
included (a 5xx marks it as an error; a 4xx is the client's, not the
gateway's). Under it:

- a queued route: ``send {route}`` (PRODUCER), from the job's id until the
  ledger admitted or refused it; the job keeps this span's context, so the
  worker's spans, the service's and the callback's continue from it;
- a proxy route: ``{method}`` (CLIENT), the call to the upstream, whose
  context the upstream receives.

Nothing here runs while tracing is off: the boundary is not wrapped, and
``public`` and ``admission`` test ``tracing.ACTIVE`` first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from tidegate import trace_context, tracing
from tidegate.redact import redact_url
from tidegate.settings import RouteSettings, TenantSettings

if TYPE_CHECKING:
    from tidegate.tracing import AttributeValue, Span


KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
"""Methods named as they are; any other is ``_OTHER`` (a client picks
methods, and span names must stay few)."""


def method_of(method: str) -> str:
    return method if method in KNOWN_METHODS else "_OTHER"


async def serve(
    active: tracing.Tracing,
    request: web.Request,
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """``handle(request)`` inside the request's SERVER span; ``handle`` is
    the problem boundary's, which answers whatever goes wrong, so the span
    records the status the client got."""
    headers = request.headers
    client = (
        trace_context.parse(
            headers.getall(trace_context.TRACEPARENT),
            headers.getall(trace_context.TRACESTATE, ()),
        )
        if trace_context.TRACEPARENT in headers
        else None
    )
    method = method_of(request.method)
    attributes: dict[str, AttributeValue] = {
        "http.request.method": method,
        "url.scheme": request.scheme,
    }
    if request.remote:  # the peer, never a forwarded-for header a client can write
        attributes["client.address"] = request.remote
    if method != request.method:
        attributes["http.request.method_original"] = request.method
    span = active.span(
        "HTTP" if method == "_OTHER" else method, "server", attributes, parent=client
    )
    with active.current(span):
        response = await handle(request)
        _answered(span, response.status)
        return response


def routed(method: str, path: str, route: RouteSettings, tenant: TenantSettings | None) -> None:
    """Name the current SERVER span after the route that took the request
    (``path``: the canonical path it was asked for)."""
    span = tracing.current_span()
    if span is None:
        return
    prefix = route.match.path_prefix
    if method in KNOWN_METHODS:
        span.update_name(f"{method} {prefix}")
    span.set_attribute("http.route", prefix)
    span.set_attribute("url.path", path)
    span.set_attribute("tidegate.route", route.name)
    if tenant is not None:
        span.set_attribute("tidegate.tenant", tenant.name)


def send(route: str, job_id: str, tenant: TenantSettings | None) -> Span | None:
    """The PRODUCER span of one admission (a child of the current SERVER
    span); None while tracing is off."""
    active = tracing.ACTIVE
    if active is None:
        return None
    attributes = {
        "messaging.system": tracing.MESSAGING_SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": route,
        "messaging.message.id": job_id,
    }
    if tenant is not None:
        attributes["tidegate.tenant"] = tenant.name
    return active.span(f"send {route}", "producer", attributes)


def admitted(span: Span, job_id: str, outcome: str) -> None:
    """End the send span: ``outcome`` "new" or "duplicate" (of ``job_id``)."""
    span.set_attribute("messaging.message.id", job_id)
    span.set_attribute("tidegate.admission", outcome)
    span.end()


def refused(span: Span, why: str) -> None:
    """End the send span of an admission the ledger refused."""
    span.set_attribute("error.type", why)
    tracing.Tracing.failed(span, why)
    span.end()


async def proxied(
    request: web.Request,
    route: RouteSettings,
    path: str,
    forward: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """``forward()`` inside a CLIENT span: the upstream receives its context."""
    active = tracing.ACTIVE
    if active is None:
        return await forward()
    assert route.upstream is not None  # settings guarantee it for proxy routes
    url = redact_url(route.upstream.rstrip("/")) + path  # no query: it may carry secrets
    method = method_of(request.method)
    span = active.span(
        "HTTP" if method == "_OTHER" else method,
        "client",
        {"http.request.method": method, "url.full": url},
    )
    with active.current(span):
        response = await forward()
        _answered(span, response.status)
        return response


def _answered(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        tracing.Tracing.failed(span, str(status))
