"""Why a request is refused, raised as a value the problem boundary answers.

Each step of handling a request (the path, the headers, the route, the tenant,
the body, admission) raises a ``Rejection`` when the request cannot go on; the
boundary (``app.problem_boundary``) turns it into the problem+json answer and
counts it under its metric reason. So a step says what went wrong once, in one
place, and never builds a response itself.

The table of what is refused for what (status, problem type, metric reason)
is ``KINDS``: a test checks that every rejection raised uses a kind from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway import problems

KINDS: Mapping[str, tuple[int, str]] = {
    # problem type: (status, metric reason)
    "unsafe-path": (400, "unsafe_path"),
    "bad-header": (400, "bad_request"),
    "bad-idempotency-key": (400, "bad_request"),
    "bad-priority": (400, "bad_request"),
    "api-key-required": (401, "unauthorized"),
    "no-route": (404, "no_route"),
    "not-found": (404, "no_route"),
    "method-not-allowed": (405, "no_route"),
    "request-timeout": (408, "slow_client"),
    "body-too-large": (413, "body_too_large"),
    "headers-too-large": (431, "headers_too_large"),
    "idempotency-key-reused": (422, "idempotency_conflict"),
    "redis-unavailable": (503, "redis_unavailable"),
    "redis-full": (503, "redis_full"),
    "outcome-unknown": (503, "outcome_unknown"),
    "not-replicated": (503, "not_replicated"),
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
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status, self.reason = KINDS[kind]
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


def body_too_large(route: str, limit_bytes: int) -> Rejection:
    return Rejection(
        "body-too-large",
        "Request body too large",
        f"Route {route} takes bodies of at most {limit_bytes} bytes.",
        max_body_bytes=limit_bytes,
        close=True,
        route=route,
    )


def body_timeout(route: str, timeout_s: float) -> Rejection:
    return Rejection(
        "request-timeout",
        "Request body too slow",
        f"The request body stalled for more than {timeout_s:g} s.",
        close=True,
        route=route,
    )
