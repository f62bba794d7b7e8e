"""What one completion callback sends: its JSON body and its headers.

The body is the job's view as the job API shows it, under a Standard
Webhooks envelope (``type``, ``timestamp``, ``data``; ``tenant`` when the job
has one, signed with the rest). The headers sign it (``tidegate.webhooks``)
and, when the job was admitted with a valid trace context (kept in the
projection's ``trace`` field), carry ``traceparent``/``tracestate``, so the
receiver's spans join the client's trace. ``worker.callback_delivery``
decides when and where to send it.
"""

from __future__ import annotations

import datetime
import json

from tidegate.job_view import job_view
from tidegate.ledger.calls import DueCallback
from tidegate.trace_context import TraceContext
from tidegate.webhooks import signed_headers


def payload(due: DueCallback, projection: dict[str, str], now_s: float) -> bytes:
    """The JSON body of one callback."""
    stamp = datetime.datetime.fromtimestamp(int(now_s), datetime.UTC)
    body: dict[str, object] = {
        "type": f"job.{due.state}",
        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": job_view(due.job_id, projection),
    }
    tenant = projection.get("tenant", "")
    if tenant:  # signed with the rest: a receiver knows whose job it is
        body["tenant"] = tenant
    return json.dumps(body, separators=(",", ":")).encode()


def headers(
    key: bytes, due: DueCallback, now_s: float, body: bytes, trace: TraceContext | None
) -> dict[str, str]:
    """The headers of one attempt: content type, signature, trace context
    (the job's, from the projection's ``trace``, or the attempt's span)."""
    out = {
        "Content-Type": "application/json",
        **signed_headers(key, due.message_id, int(now_s), body),
    }
    if trace is not None:
        out.update(trace.headers())
    return out
