"""The public port: route a request, admit it, answer at once or when done.

Order of checks, cheapest first, so that a request that will be refused costs
as little as possible: header size (431), route (404), declared body size
(413, before a byte of the body is read), then the body is read with the
limit enforced as it streams in (413 again for chunked bodies that grow too
large), then admission (503 when Redis is away, 422 on an Idempotency-Key
conflict).

A sync request registers for its job's end *before* admission, so the worker
cannot finish unseen. A sync wait that runs out is not an error: the job is
queued and the client gets the same 202 an async request gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time

from aiohttp import web
from multidict import CIMultiDict

from gateway import problems
from gateway.context import GATEWAY, Gateway
from gateway.http_headers import (
    NO_PREFERENCES,
    forward_request_headers,
    header_bytes,
    parse_prefer,
    response_headers,
)
from gateway.proxy import forward
from gateway.tenants import priority_of, unauthorized
from tidegate.envelope import Job
from tidegate.errors import (
    IdempotencyConflict,
    JobNotFound,
    NotReplicated,
    RedisUnavailable,
    Refused,
)
from tidegate.keys import new_job_id
from tidegate.ledger import TERMINAL_STATES, Admission
from tidegate.settings import RouteSettings, TenantSettings
from tidegate.throttle import take_quota

JOBS_PATH = "/_tidegate/jobs/"
RETRY_AFTER = "1"
MAX_IDEMPOTENCY_KEY_CHARS = 255


class BodyTooLarge(Exception):
    pass


async def read_body(request: web.Request, limit_bytes: int) -> bytes:
    """Read the body, refusing it as soon as it passes ``limit_bytes``."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(65536):
        total += len(chunk)
        if total > limit_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def job_links(job_id: str) -> dict[str, str]:
    base = JOBS_PATH + job_id
    return {"self": base, "result": base + "/result", "events": base + "/events"}


_ACCEPTED = (
    '{{"id": "{id}", "state": "{state}", "links": {{"self": "{base}", '
    '"result": "{base}/result", "events": "{base}/events"}}}}'
)


def accepted(job_id: str, state: str, applied: list[str]) -> web.Response:
    """202 with the voucher. Job ids and states need no JSON escaping, so the
    body is formatted directly (this is the hot path of async admission)."""
    base = JOBS_PATH + job_id
    headers = {
        "Location": base,
        "Retry-After": RETRY_AFTER,
        "Content-Type": "application/json",
    }
    if applied:
        headers["Preference-Applied"] = ", ".join(applied)
    body = _ACCEPTED.format(id=job_id, state=state, base=base)
    return web.Response(status=202, body=body.encode(), headers=headers)


async def handle(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    limit = gw.settings.gateway.max_header_bytes
    if header_bytes(request.raw_headers) > limit:
        gw.metrics.rejected.labels("", "headers_too_large").inc()
        return problems.problem(
            431,
            "headers-too-large",
            "Request header fields too large",
            f"The request's headers exceed {limit} bytes in all.",
        )
    if request.path.startswith("/_tidegate/"):
        return _reserved(request)
    route = gw.router.match(request.method, request.path)
    if route is None:
        gw.metrics.rejected.labels("", "no_route").inc()
        return problems.problem(
            404,
            "no-route",
            "No route",
            f"No route takes {request.method} {request.path}.",
        )
    tenant = None
    if gw.tenants.enabled:
        tenant = gw.tenants.identify(request)
        if tenant is None:
            gw.metrics.rejected.labels(route.name, "unauthorized").inc()
            return unauthorized()
    if route.mode == "proxy":
        if tenant is not None and tenant.quota is not None:
            try:
                over = await take_quota(gw.redis, route.name, tenant)
            except RedisUnavailable:
                return _redis_down(gw, route)
            if over is not None:
                return refused(gw, route, over, tenant.name)
        return await forward(gw, route, request)
    return await _queued(gw, route, request, tenant)


_JOB_API_PATH = re.compile(r"^/_tidegate/(openapi\.json|jobs/[^/]+(/result|/events)?)$")


def _reserved(request: web.Request) -> web.Response:
    """The job API's prefix never reaches a route: a wrong method is 405."""
    if _JOB_API_PATH.match(request.path):
        return problems.problem(
            405,
            "method-not-allowed",
            "Method not allowed",
            f"{request.method} is not part of the job API at {request.path}.",
        )
    return problems.problem(
        404, "not-found", "Not found", f"{request.path} is not part of the job API."
    )


def _redis_down(gw: Gateway, route: RouteSettings) -> web.Response:
    gw.metrics.rejected.labels(route.name, "redis_unavailable").inc()
    return problems.redis_unavailable(gw.settings.gateway.redis_retry_after_s)


def refused(gw: Gateway, route: RouteSettings, e: Refused, tenant: str) -> web.Response:
    """429 (or the route's throttle status) with Retry-After and the
    draft-ietf-httpapi-ratelimit-headers fields, saying which limit it was."""
    gw.metrics.throttled.labels(route.name, e.cause, tenant).inc()
    status = 429
    if e.cause == "capacity" and route.scaler is not None:
        status = route.scaler.throttle.status
    retry_s = max(1, math.ceil(e.retry_after_s))
    policy = f'"{e.cause}";q={e.limit};w={max(1, e.window_s)}'
    headers = {
        "Retry-After": str(retry_s),
        "RateLimit-Policy": policy,
        "RateLimit": f'"{e.cause}";r={max(0, e.remaining)};t={retry_s}',
    }
    if e.cause == "capacity":
        return problems.problem(
            status,
            "capacity-throttled",
            "Throttled: the workers are at capacity",
            f"Route {route.name} admits at the rate its workers can drain while scaling "
            f"is exhausted. Retry after {retry_s} s.",
            headers=headers,
            cause="capacity",
        )
    return problems.problem(
        429,
        "quota-exceeded",
        "Quota exceeded",
        f"Tenant {tenant}'s quota on route {route.name} is used up. Retry after {retry_s} s.",
        headers=headers,
        cause="quota",
    )


async def _queued(
    gw: Gateway, route: RouteSettings, request: web.Request, tenant: TenantSettings | None
) -> web.StreamResponse:
    started = time.perf_counter()
    priority = priority_of(request, route, tenant)
    if isinstance(priority, web.Response):
        gw.metrics.rejected.labels(route.name, "bad_request").inc()
        return priority
    declared = request.content_length
    if declared is not None and declared > route.max_body_bytes:
        gw.metrics.rejected.labels(route.name, "body_too_large").inc()
        return problems.body_too_large(route.name, route.max_body_bytes)
    try:
        if declared is not None:  # length known and within the limit
            body = await request.read()
        else:
            body = await read_body(request, route.max_body_bytes)
    except BodyTooLarge:
        gw.metrics.rejected.labels(route.name, "body_too_large").inc()
        return problems.body_too_large(route.name, route.max_body_bytes)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        gw.metrics.rejected.labels(route.name, "bad_request").inc()
        return problems.problem(
            400,
            "bad-idempotency-key",
            "Invalid Idempotency-Key",
            f"An Idempotency-Key has 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters.",
        )

    prefer = (
        parse_prefer(request.headers.getall("Prefer"))
        if "Prefer" in request.headers
        else NO_PREFERENCES
    )
    wait_s = 0.0
    applied: list[str] = []
    if route.mode == "sync":
        if prefer.respond_async:
            applied.append("respond-async")
        elif not gw.draining:  # while shutting down, nobody waits
            wait_s = route.wait_s
            if prefer.wait_s is not None:
                wait_s = min(wait_s, prefer.wait_s)
                applied.append(f"wait={prefer.wait_s:g}")

    job = Job(
        id=new_job_id(route.name),
        route=route.name,
        method=request.method,
        path=request.path,
        query=request.query_string,
        headers=tuple(forward_request_headers(request)),
        body=body,
    )
    wait_id = job.id
    waiting = gw.waiter.register(wait_id) if wait_s > 0 else None
    try:
        try:
            admitted = await gw.batcher.admit(route, Admission(job, key, tenant, priority))
        except Refused as e:
            return refused(gw, route, e, tenant.name if tenant else "")
        except RedisUnavailable:
            return _redis_down(gw, route)
        except NotReplicated as e:
            gw.metrics.rejected.labels(route.name, "not_replicated").inc()
            return problems.problem(
                503,
                "not-replicated",
                "Not durable yet",
                f"{e}. The job may exist on the primary: retry with the same "
                "Idempotency-Key to get the same job, not a second one.",
                headers={"Retry-After": str(gw.settings.gateway.redis_retry_after_s)},
            )
        except IdempotencyConflict as e:
            gw.metrics.rejected.labels(route.name, "idempotency_conflict").inc()
            return problems.problem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused with another payload",
                f"{e}. A key identifies one request: same method, path, query and body.",
            )
        metrics = gw.metrics.route(route.name)
        metrics.admission_latency.observe(time.perf_counter() - started)
        if admitted.outcome == "new":
            metrics.admitted.inc()
            state = "queued"
        else:
            metrics.duplicates.inc()
            state = await _state_of(gw, admitted.job_id)
            if waiting is not None and state not in TERMINAL_STATES:
                gw.waiter.unregister(wait_id, waiting)
                wait_id = admitted.job_id
                waiting = gw.waiter.register(wait_id)
                state = await _state_of(gw, admitted.job_id)  # it may have ended meanwhile
            if state in TERMINAL_STATES and route.mode == "sync" and not prefer.respond_async:
                return await _finished(gw, admitted.job_id, state, applied)
        if waiting is None:
            return accepted(admitted.job_id, state, applied)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiting), wait_s)
        state = await _state_of(gw, admitted.job_id) if waiting.done() else "queued"
        if state not in TERMINAL_STATES:  # timed out, or released for shutdown
            metrics.waits_timeout.inc()
            return accepted(admitted.job_id, state, applied)
        metrics.waits_result.inc()
        return await _finished(gw, admitted.job_id, state, applied)
    finally:
        if waiting is not None:
            gw.waiter.unregister(wait_id, waiting)


async def _state_of(gw: Gateway, job_id: str) -> str:
    try:
        return (await gw.ledger.projection(job_id)).get("state", "queued")
    except RedisUnavailable:
        return "queued"
    except JobNotFound:  # its retention ended between admission and now
        return "expired"


async def _finished(gw: Gateway, job_id: str, state: str, applied: list[str]) -> web.Response:
    """Answer with the stored upstream response, as if proxied."""
    try:
        reply = await gw.ledger.result(job_id)
    except RedisUnavailable:
        return accepted(job_id, state, applied)
    if reply is None:
        return problems.problem(
            409,
            "job-" + state,
            f"Job {state}",
            f"Job {job_id} ended as {state} without a result.",
            job=job_id,
            links=job_links(job_id),
        )
    headers = CIMultiDict(response_headers(reply.headers))
    headers["Tidegate-Job"] = job_id
    if applied:
        headers["Preference-Applied"] = ", ".join(applied)
    return web.Response(status=reply.status, body=reply.body, headers=headers)
