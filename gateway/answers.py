"""How a job is answered: the voucher (202), or its stored result.

Shared by admission (``gateway.queued``: a sync request answered when its job
ends) and the job API (``gateway.jobs_api``: the client redeems its voucher),
so a stored result reads the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from multidict import CIMultiDict

from gateway import problems
from gateway.http_headers import response_headers
from tidegate.envelope import Reply
from tidegate.job_view import JOBS_PATH, job_links

RETRY_AFTER = "1"

_ACCEPTED = (
    '{{"id": "{id}", "state": "{state}", "links": {{"self": "{base}", '
    '"result": "{base}/result", "events": "{base}/events"}}}}'
)


def accepted(job_id: str, state: str, applied: Sequence[str] = ()) -> web.Response:
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


def stored(job_id: str, reply: Reply, applied: Sequence[str] = ()) -> web.Response:
    """The upstream's stored response, as if proxied, naming its job."""
    headers = CIMultiDict(response_headers(reply.headers))
    headers["Tidegate-Job"] = job_id
    if applied:
        headers["Preference-Applied"] = ", ".join(applied)
    return web.Response(status=reply.status, body=reply.body, headers=headers)


def ended_without_result(job_id: str, state: str) -> web.Response:
    """409: the job ended (cancelled, expired, ...) and there is no result to give."""
    return problems.problem(
        409,
        "job-" + state,
        f"Job {state}",
        f"Job {job_id} ended as {state} without a result.",
        job=job_id,
        links=job_links(job_id),
    )
