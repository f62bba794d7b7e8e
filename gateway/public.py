"""The public port: route a request, then proxy it or admit it into its queue.

Order of checks, cheapest first, so that a request that will be refused costs
as little as possible. The problem boundary (``app.problem_boundary``) has
already checked the header block (431), every header value (400) and the path
(400, ``tidegate.paths``); here come the job API's reserved prefix (404/405),
the route (404), the tenant's key (401); a proxy route then takes its quota
and streams (``proxy``), a queued one goes through ``admission``'s steps. A step
that refuses raises a ``Rejection``; nothing here builds an error itself.
"""

from __future__ import annotations

import re

from aiohttp import web

from gateway import spans
from gateway.admission import admit_and_answer, read_request
from gateway.body import refuse_declared
from gateway.context import GATEWAY
from gateway.http_headers import NO_CREDENTIALS
from gateway.proxy import forward
from gateway.rejections import Kind, Rejection
from tidegate import log_context, tracing
from tidegate.errors import TidegateError
from tidegate.settings import RouteSettings

CANONICAL_PATH = web.RequestKey("canonical_path", str)
"""The request's canonical path, set by the problem boundary."""


def _route_of(request: web.Request, path: str) -> RouteSettings:
    """The route that takes the request; Rejection (404, 405) when none does."""
    if path.startswith("/_tidegate/"):
        raise _reserved(request.method, path)
    route = request.app[GATEWAY].router.match(request.method, path)
    if route is None:
        raise Rejection(Kind.NO_ROUTE, "No route", f"No route takes {request.method} {path}.")
    return route


async def handle(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    path = request[CANONICAL_PATH]
    route = _route_of(request, path)
    log_context.ROUTE.set(route.name)  # what this request's log lines are about
    log_context.JOB.set(None)  # (a keep-alive connection's next request may share a task)
    tenant, credentials = None, NO_CREDENTIALS
    if gw.tenants.enabled:
        tenant, credentials = gw.tenants.require(request, route.name)
    traced = tracing.ACTIVE is not None
    if traced:
        spans.routed(request.method, path, route, tenant)
    path = route.forwarding.service_path(route.match.path_prefix, path)
    if route.mode == "proxy":
        if tenant is not None and tenant.quota is not None:
            try:
                await gw.ledger.take_quota(route, tenant)
            except TidegateError as e:
                raise gw.rejection(e, route, None, tenant) from e
        if traced:
            return await spans.proxied(
                request, route, path, lambda: forward(gw, route, request, path, credentials)
            )
        return await forward(gw, route, request, path, credentials)
    job = await read_request(gw, route, request, path, tenant, credentials)
    return await admit_and_answer(gw, route, job, tenant)


def check_before_body(request: web.Request, path: str) -> None:
    """What ``Expect: 100-continue`` waits for: every check that needs no
    body (route, tenant's key, declared size). A client that asked to be told
    before it sends a body is told its request will be refused instead of
    being invited to send it; Rejection when so."""
    route = _route_of(request, path)
    gw = request.app[GATEWAY]
    if gw.tenants.enabled:
        gw.tenants.require(request, route.name)
    refuse_declared(request, route.name, route.max_body_bytes)


_JOB_ID = "[A-Za-z0-9._-]+"
_JOB_API_METHODS = (
    (re.compile(r"^/_tidegate/openapi\.json$"), "GET, HEAD"),
    (re.compile(rf"^/_tidegate/jobs/{_JOB_ID}$"), "GET, HEAD, DELETE"),
    (re.compile(rf"^/_tidegate/jobs/{_JOB_ID}/(result|events)$"), "GET, HEAD"),
)


def _reserved(method: str, path: str) -> Rejection:
    """The job API's prefix never reaches a route: a wrong method is 405 with
    ``Allow``; a path outside the API (a job id outside the id alphabet
    included) is 404."""
    for pattern, allow in _JOB_API_METHODS:
        if pattern.match(path):
            if method in allow.split(", "):
                # The method is the API's: only another spelling of the path
                # (//_tidegate/..., %5Ftidegate) brought it here, past the
                # API's own routes. Not served under a second name.
                return Rejection(
                    Kind.NOT_FOUND,
                    "Not found",
                    f"The job API is served at {path} exactly, not at another spelling of it.",
                )
            return Rejection(
                Kind.METHOD_NOT_ALLOWED,
                "Method not allowed",
                f"{method} is not part of the job API at {path}; allowed: {allow}.",
                headers={"Allow": allow},
            )
    return Rejection(Kind.NOT_FOUND, "Not found", f"{path} is not part of the job API.")
