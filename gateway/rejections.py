"""Why a request is refused, raised as a value the problem boundary answers.

Each step of handling a request (the path, the headers, the route, the tenant,
the body, admission) raises a ``Rejection`` when the request cannot go on; the
boundary (``app.problem_boundary``) turns it into the problem+json answer and
counts it under its metric reason. So a step says what went wrong once, in one
place, and never builds a response itself.

The table of what is refused for what (problem type, status, metric reason)
is the ``Kind`` enum: a rejection takes a member, checked by mypy.
Errors from below (Redis, the ledger, the throttle) become rejections in one
function, ``for_error``, which says truthfully what is known: unreachable
(nothing was sent) is "nothing was accepted"; out of memory is "full"; a call
sent but not answered is "outcome unknown", with the ``Location`` of the job
id the gateway had assigned, because the job may well exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
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


class Kind(Enum):
    """Why a request is refused: its problem type (the ``type`` URI's last
    segment), its status and the reason its metric counts it under. A kind is
    a member, not a string, so mypy refuses a misspelt one before it runs."""

    type: str
    status: int
    reason: str

    UNSAFE_PATH = ("unsafe-path", 400, "unsafe_path")
    BAD_HEADER = ("bad-header", 400, "bad_request")
    BAD_IDEMPOTENCY_KEY = ("bad-idempotency-key", 400, "bad_request")
    BAD_PRIORITY = ("bad-priority", 400, "bad_request")
    BAD_CALLBACK = ("bad-callback", 400, "bad_request")
    UNFORWARDABLE = ("unforwardable", 400, "bad_request")
    BAD_ENCODING = ("bad-encoding", 400, "bad_request")
    API_KEY_REQUIRED = ("api-key-required", 401, "unauthorized")
    CONFLICTING_KEYS = ("conflicting-keys", 400, "bad_request")
    NO_ROUTE = ("no-route", 404, "no_route")
    NOT_FOUND = ("not-found", 404, "no_route")
    METHOD_NOT_ALLOWED = ("method-not-allowed", 405, "no_route")
    REQUEST_TIMEOUT = ("request-timeout", 408, "slow_client")
    CLIENT_CLOSED = ("client-closed", 499, "client_closed")
    BODY_TOO_LARGE = ("body-too-large", 413, "body_too_large")
    HEADERS_TOO_LARGE = ("headers-too-large", 431, "headers_too_large")
    IDEMPOTENCY_KEY_REUSED = ("idempotency-key-reused", 422, "idempotency_conflict")
    CAPACITY_THROTTLED = ("capacity-throttled", 429, "throttled")
    QUOTA_EXCEEDED = ("quota-exceeded", 429, "throttled")
    REDIS_UNAVAILABLE = ("redis-unavailable", 503, "redis_unavailable")
    REDIS_FULL = ("redis-full", 503, "redis_full")
    OUTCOME_UNKNOWN = ("outcome-unknown", 503, "outcome_unknown")
    NOT_REPLICATED = ("not-replicated", 503, "not_replicated")
    REDIS_ERROR = ("redis-error", 503, "redis_error")

    def __init__(self, type_: str, status: int, reason: str) -> None:
        self.type = type_
        self.status = status
        self.reason = reason


class Rejection(Exception):
    """A request refused: its kind, title and detail."""

    def __init__(
        self,
        kind: Kind,
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
        self.status, self.reason = kind.status, kind.reason
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
            self.status, self.kind.type, self.title, self.detail, headers=self.headers, **self.extra
        )
        if self.close:
            response.force_close()
        return response


def body_too_large(route: str, limit_bytes: int, *, decoded: bool = False) -> Rejection:
    what = "bodies that decode to" if decoded else "bodies of"
    return Rejection(
        Kind.BODY_TOO_LARGE,
        "Request body too large",
        f"Route {route} takes {what} at most {limit_bytes} bytes.",
        max_body_bytes=limit_bytes,
        close=True,
        route=route,
    )


def bad_encoding(route: str, codings: str, why: str) -> Rejection:
    """A body that is not what its ``Content-Encoding`` says (``gateway.encoding``)."""
    return Rejection(
        Kind.BAD_ENCODING,
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
        Kind.CLIENT_CLOSED,
        "Client closed the request",
        "The connection was lost before the answer.",
        close=True,
    )


def body_timeout(route: str, timeout_s: float) -> Rejection:
    return Rejection(
        Kind.REQUEST_TIMEOUT,
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
            Kind.OUTCOME_UNKNOWN,
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
            Kind.OUTCOME_UNKNOWN,
            "Outcome unknown",
            "The queue did not answer in time; the operation may or may not have taken "
            "effect. Read the job's state before repeating it.",
            headers=retry,
            route=route,
        )
    if isinstance(error, RedisFull):
        return Rejection(
            Kind.REDIS_FULL,
            "Queue full",
            "The queue refuses writes right now (out of memory); nothing was accepted. "
            "Retry later.",
            headers=retry,
            route=route,
        )
    if isinstance(error, RedisUnavailable):
        return Rejection(
            Kind.REDIS_UNAVAILABLE,
            "Queue unavailable",
            "The gateway cannot reach its queue right now; nothing was accepted. Retry later.",
            headers=retry,
            route=route,
        )
    if isinstance(error, NotReplicated):
        return Rejection(
            Kind.NOT_REPLICATED,
            "Not durable yet",
            f"{error}. The job may exist on the primary: retry with the same "
            "Idempotency-Key to get the same job, not a second one.",
            headers=retry,
            route=route,
        )
    if isinstance(error, IdempotencyConflict):
        return Rejection(
            Kind.IDEMPOTENCY_KEY_REUSED,
            "Idempotency-Key reused with another payload",
            f"{error}. A key identifies one request: same method, path, query and body.",
            route=route,
        )
    if isinstance(error, Unencodable):
        return Rejection(Kind.BAD_HEADER, "Request cannot be stored", str(error), route=route)
    if isinstance(error, RedisCommandError):
        # A server that answers errors (an ACL that forbids a command, a key
        # of the wrong type, a script gone wrong) is a fault of the queue,
        # not of the request: 503, and the operator reads the log line.
        return Rejection(
            Kind.REDIS_ERROR,
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
            Kind.CAPACITY_THROTTLED,
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
        Kind.QUOTA_EXCEEDED,
        "Quota exceeded",
        f"Tenant {tenant}'s quota on route {route} is used up. Retry after {retry_s} s.",
        headers=headers,
        route=route,
        tenant=tenant,
        cause="quota",
    )
