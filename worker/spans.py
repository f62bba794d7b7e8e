"""The worker's spans (``tidegate.tracing``), when tracing is on.

Each attempt at a job is one CONSUMER span, ``process {route}``: a child of
the context the job was admitted with (the gateway's ``send`` span, or the
client's context when the gateway traced nothing) and linked to it, since the
time the job waited in the queue is the gap between the two, not work of the
admission. An attempt taken over from a worker that died is a new span of the
same trace, with its attempt number. Under it:

- the relay's call to the service, ``{method}`` (CLIENT): the service
  receives this span as its parent (``traceparent``);
- a Python handler runs with the attempt's span as the current span, so the
  spans it makes itself nest under it;
- ``finish {route}`` (INTERNAL): recording the outcome in the ledger.

A dead-lettered job's compensation is ``compensate {route}`` (CONSUMER, read
from the dead-letter stream), also a child of the admission context and
linked to it; the relay's call to ``compensate_path`` carries its context.

A completion callback is ``callback {state}`` (CLIENT), a child of the job's
admission context, whichever worker delivers it; the receiver gets its context.

While tracing is off these functions are not called: the call sites test
``tracing.ACTIVE`` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidegate import tracing
from tidegate.envelope import Failure, Job, Reply
from tidegate.keys import GROUP
from tidegate.ledger.calls import DueCallback
from tidegate.redact import redact_url
from tidegate.trace_context import TraceContext

if TYPE_CHECKING:
    from tidegate.tracing import Span


def process(active: tracing.Tracing, job: Job) -> Span:
    """The CONSUMER span of one attempt at ``job``."""
    return _consumed(
        active,
        job,
        "process",
        {"messaging.consumer.group.name": GROUP, "tidegate.job.attempt": job.attempt},
    )


def _consumed(
    active: tracing.Tracing, job: Job, operation: str, more: dict[str, str | int]
) -> Span:
    """A CONSUMER span ``{operation} {route}`` of work on ``job``: a child of
    the context it was admitted with, and linked to it (the wait before it)."""
    trace = job.trace
    return active.span(
        f"{operation} {job.route}",
        "consumer",
        {
            "messaging.system": tracing.MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": operation,
            "messaging.destination.name": job.route,
            "messaging.message.id": job.id,
            **more,
        },
        parent=trace,
        linked=() if trace is None else (trace,),
    )


def processed(span: Span, outcome: Reply | Failure, state: str) -> None:
    """What an attempt's span records at its end: the job's state after it,
    an error when it failed (the span is ended by its ``Tracing.current``)."""
    span.set_attribute("tidegate.job.state", "retried" if state == "queued" else state)
    if isinstance(outcome, Failure):
        span.set_attribute("error.type", "retryable" if outcome.retryable else "definitive")
        tracing.Tracing.failed(span, outcome.error)


def compensation(active: tracing.Tracing, job: Job) -> Span:
    """The CONSUMER span of compensating a dead-lettered job (read from the
    dead-letter stream): a child of the job's admission context, linked to it."""
    return _consumed(active, job, "compensate", {})


def compensated(span: Span, outcome: Reply | Failure | None) -> None:
    """What a compensation's span records: none configured, or how it went
    (ended by its ``Tracing.current``)."""
    if outcome is None:
        span.set_attribute("tidegate.compensation", "none_configured")
        return
    reply = outcome.reply if isinstance(outcome, Failure) else outcome
    if reply is not None:
        span.set_attribute("http.response.status_code", reply.status)
    span.set_attribute(
        "tidegate.compensation", "failed" if isinstance(outcome, Failure) else "done"
    )
    if isinstance(outcome, Failure):
        tracing.Tracing.failed(span, outcome.error)


def finish(route: str) -> Span | None:
    """The span of recording an attempt's outcome (a child of the attempt's)."""
    active = tracing.ACTIVE
    if active is None:
        return None
    return active.span(f"finish {route}", "internal", {"messaging.destination.name": route})


def call(active: tracing.Tracing, method: str, base: str, path: str) -> Span:
    """The CLIENT span of one call to a service (the query is left out: it
    may carry secrets, as may the base URL's credentials, which are redacted)."""
    return active.span(
        method,
        "client",
        {"http.request.method": method, "url.full": redact_url(base) + path},
    )


def called(span: Span, outcome: Reply | Failure) -> None:
    """Close a call's span: the status answered, or why there was none."""
    reply = outcome.reply if isinstance(outcome, Failure) else outcome
    if reply is not None:
        span.set_attribute("http.response.status_code", reply.status)
    if isinstance(outcome, Failure):
        span.set_attribute("error.type", str(reply.status) if reply else "no answer")
        tracing.Tracing.failed(span, outcome.error)
    span.end()


def callback(
    active: tracing.Tracing,
    route: str,
    due: DueCallback,
    url: str,
    admitted: TraceContext | None,
) -> Span:
    """The CLIENT span of one callback delivery attempt: a child of the
    job's admission context (a new trace when the job has none)."""
    return active.span(
        f"callback {due.state}",
        "client",
        {
            "http.request.method": "POST",
            "url.full": redact_url(url.partition("?")[0]),
            "messaging.destination.name": route,
            "messaging.message.id": due.job_id,
            "tidegate.callback.attempt": due.attempt,
        },
        parent=admitted,
    )


def called_back(span: Span, status: int | None, error: str = "") -> None:
    """Close a callback attempt's span: the receiver's status, or the error."""
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if status is None or not 200 <= status < 300:
        span.set_attribute("error.type", error or str(status))
        tracing.Tracing.failed(span, error or f"the receiver answered {status}")
    span.end()
