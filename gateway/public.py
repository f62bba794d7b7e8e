"""The public port: route a request, admit it, answer at once or when done.

Order of checks, cheapest first, so that a request that will be refused costs
as little as possible. The problem boundary (``app.problem_boundary``) has
already checked the header block (431), every header value (400) and the path
(400, ``tidegate.paths``); here come the route (404), the tenant's key (401),
the priority and the Idempotency-Key (400), the declared body size (413,
before a byte of the body is read), then the body, read with its size limit
and stall timeout enforced as it streams in (413, 408), then admission. A
step that refuses raises a ``Rejection``; nothing here builds an error itself.

Admission's Redis failures each get their own truthful answer: unreachable
(nothing was sent) is 503 "nothing was accepted"; out of memory is 503 "full";
a call that was sent but not answered is 503 "outcome unknown" with the
``Location`` of the job id the gateway had assigned, because the job may well
exist: the client GETs it, or repeats the request with the same
Idempotency-Key, which can never create a second job.

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
from typing import NamedTuple

from aiohttp import web
from multidict import CIMultiDict

from gateway import problems
from gateway.body import read_body
from gateway.context import GATEWAY, Gateway
from gateway.http_headers import NO_CREDENTIALS, NO_PREFERENCES, parse_prefer, response_headers
from gateway.proxy import forward
from gateway.rejections import Rejection
from gateway.tenants import priority_of
from tidegate.envelope import Job
from tidegate.errors import (
    IdempotencyConflict,
    JobNotFound,
    NotReplicated,
    OutcomeUnknown,
    RedisFull,
    RedisUnavailable,
    Refused,
    Unencodable,
)
from tidegate.keys import new_job_id
from tidegate.ledger import TERMINAL_STATES
from tidegate.ledger.throttle import take_quota
from tidegate.settings import RouteSettings, TenantSettings

JOBS_PATH = "/_tidegate/jobs/"
RETRY_AFTER = "1"
CANONICAL_PATH = web.RequestKey("canonical_path", str)
"""The request's canonical path, set by the problem boundary."""
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")


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
    path = request[CANONICAL_PATH]
    if path.startswith("/_tidegate/"):
        raise _reserved(request.method, path)
    route = gw.router.match(request.method, path)
    if route is None:
        raise Rejection("no-route", "No route", f"No route takes {request.method} {path}.")
    tenant, credentials = None, NO_CREDENTIALS
    if gw.tenants.enabled:
        tenant, credentials = gw.tenants.require(request, route.name)
    if route.mode == "proxy":
        if tenant is not None and tenant.quota is not None:
            try:
                await take_quota(gw.redis, route.name, tenant)
            except Refused as e:
                return refused(gw, route, e, tenant.name)
            except RedisUnavailable as e:
                raise redis_rejection(gw, e, route.name) from e
        return await forward(gw, route, request, path, credentials)
    return await _queued(gw, route, request, path, tenant, credentials)


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
            return Rejection(
                "method-not-allowed",
                "Method not allowed",
                f"{method} is not part of the job API at {path}; allowed: {allow}.",
                headers={"Allow": allow},
            )
    return Rejection("not-found", "Not found", f"{path} is not part of the job API.")


def redis_rejection(
    gw: Gateway, error: RedisUnavailable, route: str = "", job_id: str | None = None
) -> Rejection:
    """The answer to a Redis failure, saying truthfully what is known.

    Out of memory is also remembered for /readyz, which reports it until the
    gateway's health check finds that Redis takes writes again.
    """
    retry = {"Retry-After": str(gw.settings.gateway.redis_retry_after_s)}
    if isinstance(error, OutcomeUnknown) and job_id is not None:
        links = job_links(job_id)
        return Rejection(
            "outcome-unknown",
            "Outcome unknown",
            f"The queue did not confirm admission in time; job {job_id} may or may not "
            "exist. GET its Location (404 means it was not admitted), or repeat the "
            "request with the same Idempotency-Key: that never creates a second job.",
            headers={**retry, "Location": links["self"]},
            route=route,
            job=job_id,
            links=links,
        )
    if isinstance(error, OutcomeUnknown):
        return Rejection(
            "outcome-unknown",
            "Outcome unknown",
            "The queue did not answer in time; the operation may or may not have taken "
            "effect. Read the job's state before repeating it.",
            headers=retry,
            route=route,
        )
    if isinstance(error, RedisFull):
        gw.writes_refused = True
        return Rejection(
            "redis-full",
            "Queue full",
            "The queue refuses writes right now (out of memory); nothing was accepted. "
            "Retry later.",
            headers=retry,
            route=route,
        )
    return Rejection(
        "redis-unavailable",
        "Queue unavailable",
        "The gateway cannot reach its queue right now; nothing was accepted. Retry later.",
        headers=retry,
        route=route,
    )


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


def idempotency_key(request: web.Request, route: str) -> str | None:
    """The request's Idempotency-Key; Rejection unless 1-255 visible ASCII characters."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Rejection(
            "bad-idempotency-key",
            "Invalid Idempotency-Key",
            "An Idempotency-Key has 1 to 255 visible ASCII characters.",
            route=route,
        )
    return key


class Answer(NamedTuple):
    """How a queued request is answered: with its result (``sync``; waiting up
    to ``wait_s``) or at once with 202, and the preferences ``applied``."""

    sync: bool
    wait_s: float
    applied: list[str]


def answer_for(gw: Gateway, route: RouteSettings, request: web.Request) -> Answer:
    """How the request is answered, from the route's mode and ``Prefer``."""
    prefer = (
        parse_prefer(request.headers.getall("Prefer"))
        if "Prefer" in request.headers
        else NO_PREFERENCES
    )
    if route.mode != "sync":
        return Answer(False, 0.0, [])
    if prefer.respond_async:
        return Answer(False, 0.0, ["respond-async"])
    if gw.draining:  # while shutting down, nobody waits
        return Answer(True, 0.0, [])
    if prefer.wait_s is None:
        return Answer(True, route.wait_s, [])
    wait_s = min(route.wait_s, prefer.wait_s)
    return Answer(True, wait_s, [f"wait={wait_s:g}"])


async def _queued(
    gw: Gateway,
    route: RouteSettings,
    request: web.Request,
    path: str,
    tenant: TenantSettings | None,
    credentials: frozenset[str],
) -> web.StreamResponse:
    started = time.perf_counter()
    priority = priority_of(request, route, tenant)
    key = idempotency_key(request, route.name)
    body = await read_body(
        request, route.name, route.max_body_bytes, gw.settings.gateway.body_timeout_s
    )
    sync, wait_s, applied = answer_for(gw, route, request)
    job = Job(
        id=new_job_id(route.name),
        route=route.name,
        method=request.method,
        path=path,
        query=request.rel_url.raw_query_string,
        headers=tuple(gw.forwarding.request_headers(request, credentials)),
        body=body,
    )
    wait_id = job.id
    waiting = gw.waiter.register(wait_id) if wait_s > 0 else None
    try:
        try:
            admitted = await gw.ledger.admit(route, job, key, tenant, priority)
        except Refused as e:
            return refused(gw, route, e, tenant.name if tenant else "")
        except RedisUnavailable as e:
            raise redis_rejection(gw, e, route.name, job.id) from e
        except NotReplicated as e:
            raise Rejection(
                "not-replicated",
                "Not durable yet",
                f"{e}. The job may exist on the primary: retry with the same "
                "Idempotency-Key to get the same job, not a second one.",
                headers={"Retry-After": str(gw.settings.gateway.redis_retry_after_s)},
                route=route.name,
            ) from e
        except Unencodable as e:
            raise Rejection(
                "bad-header", "Request cannot be stored", str(e), route=route.name
            ) from e
        except IdempotencyConflict as e:
            raise Rejection(
                "idempotency-key-reused",
                "Idempotency-Key reused with another payload",
                f"{e}. A key identifies one request: same method, path, query and body.",
                route=route.name,
            ) from e
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
            if state in TERMINAL_STATES and sync:
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
