"""How a job is answered: the voucher (202), or its stored result.

Shared by admission (``gateway.admission``: a sync request answered when its job
ends) and the job API (``gateway.jobs_api``: the client redeems its voucher),
so a stored result reads the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from multidict import CIMultiDict

from gateway import problems
from gateway.http_headers import response_headers
from gateway.passthrough import RelayedStream, relayed
from tidegate.envelope import Reply
from tidegate.job_view import JOBS_PATH, job_links
from tidegate.settings import ForwardingSettings

AS_SENT = ForwardingSettings()

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


def stored(
    job_id: str,
    reply: Reply,
    applied: Sequence[str] = (),
    *,
    head: bool = False,
    forwarding: ForwardingSettings = AS_SENT,
) -> web.StreamResponse:
    """The upstream's stored response, as if proxied, naming its job; its
    headers as the service sent them (``gateway.passthrough``), redirects
    rewritten as the route says. The answer to a HEAD carries the length the
    service declared for it."""
    headers = CIMultiDict(forwarding.answer_headers(response_headers(reply.headers)))
    headers["Tidegate-Job"] = job_id
    if applied:
        headers["Preference-Applied"] = ", ".join(applied)
    if head:
        response = RelayedStream(status=reply.status, reason=None, headers=headers)
        length = next((v for k, v in reply.headers if k.lower() == "content-length"), "")
        if length.strip().isdigit():
            response.content_length = int(length)
        return response
    return relayed(reply.status, None, headers, reply.body)


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
