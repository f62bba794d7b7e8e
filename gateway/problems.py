"""RFC 9457 problem details: every error the gateway returns is one of these.

Clients get a stable ``type`` URI to branch on, a short ``title`` and a
``detail`` written for the person reading the log; never a stack trace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

PROBLEM_TYPE_BASE = "https://tidegate.io/problems/"
CONTENT_TYPE = "application/problem+json"


def problem(
    status: int,
    kind: str,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """A problem+json response; ``extra`` adds members (RFC 9457 section 3.2)."""
    return web.Response(
        status=status,
        body=problem_body(status, kind, title, detail, **extra),
        content_type=CONTENT_TYPE,
        headers=headers,
    )


def problem_body(status: int, kind: str, title: str, detail: str, **extra: Any) -> bytes:
    """The problem document itself, for answers written outside aiohttp's handlers."""
    body = {"type": PROBLEM_TYPE_BASE + kind, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return json.dumps(body).encode()


def job_not_found(job_id: str) -> web.Response:
    """Unknown, expired, malformed or another tenant's: the same answer."""
    return problem(
        404, "job-not-found", "No such job", f"No job {job_id} (unknown, or its retention ended)."
    )
