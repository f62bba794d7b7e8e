"""Admitting a request into its route's queue, in small steps.

1. ``read_request``: the priority class, the Idempotency-Key, how the client
   wants its answer (``Answer``), the body (read within its size limit and
   stall timeout) and the job built from it; each check raises a
   ``Rejection``.
2. ``admit``: one call to the ledger (coalesced with concurrent admissions);
   anything the ledger raises becomes a ``Rejection`` in one place
   (``rejections.for_error``).
3. ``answer``: 202 with the voucher at once, or, for a sync request, the
   job's stored result once it ends (202 still when the wait runs out).

A sync request registers for its job's end *before* admission, so the worker
cannot finish unseen. A repeated Idempotency-Key answers for the job it names:
its result when it has ended, else a wait on that job.
"""

from __future__ import annotations

import functools
import re
import time
from typing import TYPE_CHECKING, NamedTuple

from aiohttp import web

from gateway import answers, spans
from gateway.body import read_body
from gateway.context import Gateway
from gateway.http_headers import NO_PREFERENCES, parse_prefer
from gateway.metrics import RouteMetrics
from gateway.rejections import Kind, Rejection
from gateway.tenants import priority_of
from tidegate import log_context, tracing
from tidegate.callback_urls import BadCallback, Target, allowed, parse_target
from tidegate.envelope import Ended, Job, Reply
from tidegate.errors import JobNotFound, RedisUnavailable, TidegateError
from tidegate.ledger import TERMINAL_STATES
from tidegate.ledger.admission import Admitted
from tidegate.settings import ForwardingSettings, RouteSettings, TenantSettings
from tidegate.stages import since_ms

if TYPE_CHECKING:
    from tidegate.tracing import Span

_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")


class Answer(NamedTuple):
    """How a queued request is answered: with its result (``sync``; waiting up
    to ``wait_s``) or at once with 202, and the preferences ``applied``."""

    sync: bool
    wait_s: float
    applied: list[str]


class Request(NamedTuple):
    """A request ready to admit."""

    job: Job
    idempotency_key: str | None
    priority: str
    answer: Answer
    read_at: float
    """When reading began (``time.perf_counter``), for the admission latency."""
    callback: str = ""
    """The URL to call when the job ends ('' = none), checked against the allow list."""
    send: Span | None = None
    """The admission's span (tracing on): the job carries its context."""


def idempotency_key(request: web.Request, route: str) -> str | None:
    """The request's Idempotency-Key; Rejection unless 1-255 visible ASCII characters."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Rejection(
            Kind.BAD_IDEMPOTENCY_KEY,
            "Invalid Idempotency-Key",
            "An Idempotency-Key has 1 to 255 visible ASCII characters.",
            route=route,
        )
    return key


@functools.cache
def _prefixes(allow: tuple[str, ...]) -> tuple[Target, ...]:
    return tuple(parse_target(prefix) for prefix in allow)


def callback_of(
    request: web.Request, route: RouteSettings, tenant: TenantSettings | None = None
) -> str:
    """The request's ``Tidegate-Callback`` URL in canonical form ('' = none);
    Rejection when the route takes no callbacks or the URL is not allowed:
    under the route's ``callback.allow`` and, with tenants, under the
    tenant's own ``callback_allow`` too (a tenant names only its receivers)."""
    url = request.headers.get("Tidegate-Callback")
    if url is None:
        return ""
    if route.callback is None:
        raise Rejection(
            Kind.BAD_CALLBACK,
            "Callbacks not enabled",
            f"Route {route.name} takes no Tidegate-Callback: poll the job instead.",
            route=route.name,
        )
    if tenant is not None and not tenant.callback_allow:
        raise Rejection(
            Kind.BAD_CALLBACK,
            "Callbacks not enabled for this tenant",
            f"Tenant {tenant.name} has no callback receivers (tenants[].callback_allow): "
            "poll the job instead. Nothing was admitted.",
            route=route.name,
        )
    try:
        canonical = allowed(url, _prefixes(route.callback.allow))
        if tenant is not None:
            allowed(url, _prefixes(tenant.callback_allow))
        return canonical
    except BadCallback as e:
        raise Rejection(
            Kind.BAD_CALLBACK,
            "Callback URL refused",
            f"Tidegate-Callback: {e}. Nothing was admitted.",
            route=route.name,
        ) from None


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
    if prefer.wait_s is None:
        return Answer(True, route.wait_s, [])
    wait_s = min(route.wait_s, prefer.wait_s)
    return Answer(True, wait_s, [f"wait={wait_s:g}"])


async def read_request(
    gw: Gateway,
    route: RouteSettings,
    request: web.Request,
    path: str,
    tenant: TenantSettings | None,
    credentials: frozenset[str],
) -> Request:
    """Step 1: everything checked and read, cheapest check first."""
    read_at = time.perf_counter()
    priority = priority_of(request, route, tenant)
    key = idempotency_key(request, route.name)
    callback = callback_of(request, route, tenant)
    body = await read_body(
        request, route.name, route.max_body_bytes, gw.settings.gateway.body_timeout_s
    )
    job_id = gw.ledger.new_job_id(route, tenant.name if tenant else "", key)
    send = spans.send(route.name, job_id, tenant)
    job = Job(
        id=job_id,
        route=route.name,
        method=request.method,
        path=path,
        query=request.rel_url.raw_query_string,
        headers=tuple(
            gw.forwarding.request_headers(
                request,
                credentials,
                host=route.forwarding.preserve_host,
                continued=None if send is None else tracing.Tracing.context_of(send),
            )
        ),
        body=body,
    )
    log_context.JOB.set(job.id)
    return Request(job, key, priority, answer_for(gw, route, request), read_at, callback, send)


async def admit(
    gw: Gateway, route: RouteSettings, job: Request, tenant: TenantSettings | None
) -> Admitted:
    """Step 2: the ledger admits the job, or the reason it did not becomes a Rejection."""
    try:
        admitted = await gw.ledger.admit(
            route, job.job, job.idempotency_key, tenant, job.priority, job.callback
        )
    except TidegateError as e:
        rejection = gw.rejection(e, route, job.job.id, tenant)
        if job.send is not None:
            spans.refused(job.send, rejection.title)
        raise rejection from e
    if job.send is not None:
        spans.admitted(job.send, admitted.job_id, admitted.outcome)
    return admitted


async def admit_and_answer(
    gw: Gateway, route: RouteSettings, job: Request, tenant: TenantSettings | None
) -> web.StreamResponse:
    """Steps 2 and 3, for a request read by step 1 (``read_request``)."""
    started = job.read_at
    sync, wait_s, applied = job.answer
    wait_id = job.job.id
    head = job.job.method == "HEAD"
    waiting = gw.waiter.register(wait_id) if wait_s > 0 else None
    try:
        admitted = await admit(gw, route, job, tenant)
        metrics = gw.metrics.route(route.name)
        metrics.admission_latency.observe(time.perf_counter() - started)
        if admitted.outcome == "new":
            metrics.admitted.inc()
            state = "queued"
        else:
            metrics.duplicates.inc()
            state, reply, _ = await _read_outcome(gw, admitted.job_id)
            if waiting is not None and state not in TERMINAL_STATES:
                gw.waiter.unregister(wait_id, waiting)
                wait_id = admitted.job_id
                waiting = gw.waiter.register(wait_id)
                # it may have ended meanwhile
                state, reply, _ = await _read_outcome(gw, admitted.job_id)
            if state in TERMINAL_STATES and sync:
                return _ended(admitted.job_id, state, reply, applied, head, route.forwarding)
        if waiting is None:
            return answers.accepted(admitted.job_id, state, applied)
        released, carried = await gw.waiter.wait(waiting, wait_s)
        return await _after_wait(
            gw, admitted.job_id, released, carried, applied, metrics, head, route.forwarding
        )
    finally:
        if waiting is not None:
            gw.waiter.unregister(wait_id, waiting)


async def _after_wait(
    gw: Gateway,
    job_id: str,
    released: bool,
    carried: Ended | None,
    applied: list[str],
    metrics: RouteMetrics,
    head: bool,
    forwarding: ForwardingSettings,
) -> web.StreamResponse:
    """Step 3 once the wait is over: the outcome the notification carried,
    else the job read back; 202 when it has not ended (timed out, shutdown)."""
    if not released:  # the wait ran out: the job's state now (running, say)
        ended: tuple[str, Reply | None, int | None] = await _read_outcome(gw, job_id)
    elif carried is not None:
        ended = (carried.state, carried.reply, carried.ended_ms)
    else:
        ended = await _read_outcome(gw, job_id)
    state, reply, ended_ms = ended
    if state not in TERMINAL_STATES:
        metrics.waits_timeout.inc()
        return answers.accepted(job_id, state, applied)
    metrics.waits_result.inc()
    if ended_ms is not None:
        metrics.notified.observe(since_ms(ended_ms, time.time()))
    return _ended(job_id, state, reply, applied, head, forwarding)


def _ended(
    job_id: str,
    state: str,
    reply: Reply | None,
    applied: list[str],
    head: bool,
    forwarding: ForwardingSettings,
) -> web.StreamResponse:
    """Step 3 for an ended job: its stored response, as if proxied."""
    if reply is None:
        return answers.ended_without_result(job_id, state)
    return answers.stored(job_id, reply, applied, head=head, forwarding=forwarding)


async def _read_outcome(gw: Gateway, job_id: str) -> tuple[str, Reply | None, int | None]:
    """State, stored response and when the state was reached (Redis ms) of a
    job, in one round trip ("queued" while Redis is away: answered 202)."""
    try:
        projection, reply = await gw.ledger.ended(job_id)
    except RedisUnavailable:
        return "queued", None, None
    except JobNotFound:  # its retention ended between admission and now
        return "expired", None, None
    updated = projection.get("updated_at_ms", "")
    return projection.get("state", "queued"), reply, int(updated) if updated.isdigit() else None
