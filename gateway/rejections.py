"""Why a request is refused, raised as a value the problem boundary answers.

Each step of handling a request (the path, the headers, the route, the tenant,
the body, admission) raises a ``Rejection`` when the request cannot go on; the
boundary (``app.problem_boundary``) turns it into the problem+json answer and
counts it under its metric reason. So a step says what went wrong once, in one
place, and never builds a response itself.

The table of what is refused for what (status, problem type, metric reason)
is ``KINDS``: a test checks that every rejection raised uses a kind from it.
Errors from below (Redis, the ledger, the throttle) become rejections in one
function, ``for_error``, which says truthfully what is known: unreachable
(nothing was sent) is "nothing was accepted"; out of memory is "full"; a call
sent but not answered is "outcome unknown", with the ``Location`` of the job
id the gateway had assigned, because the job may well exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway import problems
from tidegate.errors import (
    IdempotencyConflict,
    NotReplicated,
    OutcomeUnknown,
    RedisCommandError,
    RedisFull,
    RedisUnavailable,
    Refused,
    TidegateError,
    Unencodable,
)
from tidegate.job_view import job_links

KINDS: Mapping[str, tuple[int, str]] = {
    # problem type: (status, metric reason)
    "unsafe-path": (400, "unsafe_path"),
    "bad-header": (400, "bad_request"),
    "bad-idempotency-key": (400, "bad_request"),
    "bad-priority": (400, "bad_request"),
    "bad-callback": (400, "bad_request"),
    "unforwardable": (400, "bad_request"),
    "bad-encoding": (400, "bad_request"),
    "api-key-required": (401, "unauthorized"),
    "conflicting-keys": (400, "bad_request"),
    "no-route": (404, "no_route"),
    "not-found": (404, "no_route"),
    "method-not-allowed": (405, "no_route"),
    "request-timeout": (408, "slow_client"),
    "client-closed": (499, "client_closed"),
    "body-too-large": (413, "body_too_large"),
    "headers-too-large": (431, "headers_too_large"),
    "idempotency-key-reused": (422, "idempotency_conflict"),
    "capacity-throttled": (429, "throttled"),
    "quota-exceeded": (429, "throttled"),
    "redis-unavailable": (503, "redis_unavailable"),
    "redis-full": (503, "redis_full"),
    "outcome-unknown": (503, "outcome_unknown"),
    "not-replicated": (503, "not_replicated"),
    "redis-error": (503, "redis_error"),
}


class Rejection(Exception):
    """A request refused: its problem type (a key of ``KINDS``), title and detail."""

    def __init__(
        self,
        kind: str,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
        route: str = "",
        status: int | None = None,
        tenant: str = "",
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status, self.reason = KINDS[kind]
        if status is not None:  # a route's throttle may answer 503 instead of 429
            self.status = status
        self.tenant = tenant
        """The tenant refused, for the throttled metric (not part of the answer)."""
        self.title = title
        self.detail = detail
        self.headers = headers
        self.close = close
        """End the connection after answering (the rest of the request is unread)."""
        self.route = route
        """The route the request was for ('' before routing), for the metric."""
        self.extra = extra

    def response(self) -> web.Response:
        response = problems.problem(
            self.status, self.kind, self.title, self.detail, headers=self.headers, **self.extra
        )
        if self.close:
            response.force_close()
        return response


def body_too_large(route: str, limit_bytes: int, *, decoded: bool = False) -> Rejection:
    what = "bodies that decode to" if decoded else "bodies of"
    return Rejection(
        "body-too-large",
        "Request body too large",
        f"Route {route} takes {what} at most {limit_bytes} bytes.",
        max_body_bytes=limit_bytes,
        close=True,
        route=route,
    )


def bad_encoding(route: str, codings: str, why: str) -> Rejection:
    """A body that is not what its ``Content-Encoding`` says (``gateway.encoding``)."""
    return Rejection(
        "bad-encoding",
        "Body does not match its Content-Encoding",
        f"The request body is not valid {codings} ({why}); send it encoded as "
        "Content-Encoding says, or without that header.",
        close=True,
        route=route,
    )


def client_closed() -> Rejection:
    """The client went away before its answer (its connection was lost while
    the request was read or answered): counted, and the answer goes nowhere."""
    return Rejection(
        "client-closed",
        "Client closed the request",
        "The connection was lost before the answer.",
        close=True,
    )


def body_timeout(route: str, timeout_s: float) -> Rejection:
    return Rejection(
        "request-timeout",
        "Request body too slow",
        f"The request body stalled for more than {timeout_s:g} s.",
        close=True,
        route=route,
    )


def for_error(
    error: TidegateError,
    *,
    route: str = "",
    job_id: str | None = None,
    retry_after_s: int = 1,
    throttle_status: int = 429,
    tenant: str = "",
) -> Rejection:
    """The answer to an error from below, for a request to ``route``.

    ``job_id``: the id the gateway assigned before admitting (an unknown
    outcome then points at it); ``throttle_status``: the route's answer when
    its capacity throttle refuses; ``tenant``: who was refused."""
    retry = {"Retry-After": str(retry_after_s)}
    if isinstance(error, Refused):
        return _refused(error, route, throttle_status, tenant)
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
        return Rejection(
            "redis-full",
            "Queue full",
            "The queue refuses writes right now (out of memory); nothing was accepted. "
            "Retry later.",
            headers=retry,
            route=route,
        )
    if isinstance(error, RedisUnavailable):
        return Rejection(
            "redis-unavailable",
            "Queue unavailable",
            "The gateway cannot reach its queue right now; nothing was accepted. Retry later.",
            headers=retry,
            route=route,
        )
    if isinstance(error, NotReplicated):
        return Rejection(
            "not-replicated",
            "Not durable yet",
            f"{error}. The job may exist on the primary: retry with the same "
            "Idempotency-Key to get the same job, not a second one.",
            headers=retry,
            route=route,
        )
    if isinstance(error, IdempotencyConflict):
        return Rejection(
            "idempotency-key-reused",
            "Idempotency-Key reused with another payload",
            f"{error}. A key identifies one request: same method, path, query and body.",
            route=route,
        )
    if isinstance(error, Unencodable):
        return Rejection("bad-header", "Request cannot be stored", str(error), route=route)
    if isinstance(error, RedisCommandError):
        # A server that answers errors (an ACL that forbids a command, a key
        # of the wrong type, a script gone wrong) is a fault of the queue,
        # not of the request: 503, and the operator reads the log line.
        return Rejection(
            "redis-error",
            "Queue error",
            "The queue answered with an error (the gateway's log says which); the "
            "request may not have been accepted. Retry later, with the same "
            "Idempotency-Key so that a retry never makes a second job.",
            headers=retry,
            route=route,
        )
    raise error


def _refused(e: Refused, route: str, throttle_status: int, tenant: str) -> Rejection:
    """429 (or the route's throttle status) with Retry-After and the
    draft-ietf-httpapi-ratelimit-headers fields, saying which limit it was."""
    retry_s = max(1, math.ceil(e.retry_after_s))
    headers = {
        "Retry-After": str(retry_s),
        "RateLimit-Policy": f'"{e.cause}";q={e.limit};w={max(1, e.window_s)}',
        "RateLimit": f'"{e.cause}";r={max(0, e.remaining)};t={retry_s}',
    }
    if e.cause == "capacity":
        return Rejection(
            "capacity-throttled",
            "Throttled: the workers are at capacity",
            f"Route {route} admits at the rate its workers can drain while scaling "
            f"is exhausted. Retry after {retry_s} s.",
            headers=headers,
            route=route,
            status=throttle_status,
            tenant=tenant,
            cause="capacity",
        )
    return Rejection(
        "quota-exceeded",
        "Quota exceeded",
        f"Tenant {tenant}'s quota on route {route} is used up. Retry after {retry_s} s.",
        headers=headers,
        route=route,
        tenant=tenant,
        cause="quota",
    )
