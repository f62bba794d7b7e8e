"""The relay executor: replay a job's request against an unchanged service.

The upstream sees the original method, path, query, headers and body, plus
``Idempotency-Key: <job id>`` (the same on every attempt, so the service can
make its effect happen once) and ``Tidegate-Attempt``. Its answer is the
job's result, status and all. The client's ``traceparent``/``tracestate``,
as the gateway checked them, go on with every attempt, so the service's
spans join the client's trace (with tracing on, the context of the call's own
span, ``worker.spans``). Which outcomes are retried:

- no answer (refused, reset, timed out): retryable;
- 5xx and 429: retryable, the answer kept for the record;
- anything else, 4xx included, is definitive: retrying cannot change it.

Two limits hold whatever the job says: the path sent is the job's canonical
path (``tidegate.paths``) under the route's prefix, byte for byte, so a job
can never make the relay call outside the route (one that would is failed
for good, not sent); and an answer larger than ``max_result_bytes`` is not
read whole, let alone stored: the job fails for good with a 502 saying why.
"""

from __future__ import annotations

import base64
import json
import time

from tidegate import trace_context, tracing
from tidegate.backoff import parse_retry_after
from tidegate.envelope import Failure, Job, Reply
from tidegate.http import strip_headers
from tidegate.paths import UnsafePath, canonical_path, under_prefix
from tidegate.redact import redact_url
from tidegate.trace_context import TraceContext
from tidegate.upstream import Answer, BodyTooLarge, Upstream, UpstreamUnreachable
from worker import spans

_DROP_REQUEST = (
    frozenset({"host", "content-length", "idempotency-key", "tidegate-attempt"})
    | trace_context.HEADERS  # sent as checked: a job an older gateway stored has them raw
)
_DROP_RESPONSE = frozenset({"content-length", "date", "server"})
_DROP_RESPONSE_TO_HEAD = frozenset({"date", "server"})
"""A HEAD's answer keeps its Content-Length: the GET's, which the gateway
gives the client (there is no body to measure)."""


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status == 429


def path_within(prefix: str, path: str) -> bool:
    """Whether ``path`` is canonical and lies under ``prefix``."""
    try:
        return canonical_path(path) == path and under_prefix(prefix, path)
    except UnsafePath:
        return False


def _host_of(job: Job) -> str | None:
    """A Host stored with the job: its route preserves the client's."""
    return next((v for k, v in job.headers if k.lower() == "host"), None)


class Relay:
    """Calls ``upstream`` for each job; one connection pool per worker.

    Compensation (when ``compensate_path`` is set): a POST to that path on the
    upstream with a JSON body ``{"job", "error", "request": {"method", "path",
    "query", "headers", "body_base64"}}`` and ``Idempotency-Key: <job
    id>:compensate``; it is retried until the upstream answers definitively,
    so the endpoint must be idempotent (the key makes that easy).
    """

    def __init__(
        self,
        upstream: str,
        timeout_s: float,
        compensate_path: str | None = None,
        *,
        prefix: str = "/",
        max_result_bytes: int = 1048576,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.shown = redact_url(self.upstream)
        """The upstream as messages may name it (no credentials)."""
        self.compensate_path = compensate_path
        self.prefix = prefix
        self.max_result_bytes = max_result_bytes
        self.timeout_s = timeout_s
        self._http: Upstream | None = None

    async def open(self) -> None:
        self._http = Upstream(self.upstream)

    async def close(self) -> None:
        if self._http:
            await self._http.close()

    async def __call__(self, job: Job) -> Reply | Failure:
        assert self._http is not None, "Relay.open() first"
        if not path_within(self.prefix, job.path):
            return Failure(f"path {job.path!r} lies outside the route's prefix; not sent", False)
        active = tracing.ACTIVE
        if active is None:
            return await self._call(job, job.trace)
        span = spans.call(active, job.method, self.upstream, job.path)
        outcome = await self._call(job, active.context_of(span))
        spans.called(span, outcome)
        return outcome

    async def _call(self, job: Job, trace: TraceContext | None) -> Reply | Failure:
        """One call to the service, passing ``trace`` on: the job's own
        context, or the call's span (tracing on)."""
        assert self._http is not None, "Relay.open() first"
        headers = strip_headers(job.headers, _DROP_REQUEST)
        headers += [("Idempotency-Key", job.id), ("Tidegate-Attempt", str(job.attempt))]
        if trace is not None:
            headers += trace.headers()
        host = _host_of(job)
        target = job.path + (f"?{job.query}" if job.query else "")
        try:
            answer = await self._http.request(
                job.method,
                target,
                headers,
                job.body,
                timeout_s=self.timeout_s,
                max_body_bytes=self.max_result_bytes,
                host=host,
            )
        except BodyTooLarge:
            return Failure.result_too_large(self.max_result_bytes)
        except TimeoutError:
            return Failure(f"upstream {self.shown} timed out after {self.timeout_s:g}s", True)
        except UpstreamUnreachable as e:
            return Failure(f"upstream {self.shown} unreachable: {e}", True)
        except ValueError as e:  # the stored request cannot be sent as it is
            return Failure(f"not sent to upstream {self.shown}: {e}", False)
        reply = Reply(
            status=answer.status,
            headers=tuple(
                strip_headers(
                    answer.headers,
                    _DROP_RESPONSE_TO_HEAD if job.method == "HEAD" else _DROP_RESPONSE,
                )
            ),
            body=answer.body,
        )
        if is_retryable_status(reply.status):
            wait_s = parse_retry_after(answer.header("Retry-After"), time.time())
            return Failure(f"upstream answered {reply.status}", True, reply, wait_s)
        return reply

    async def compensate(self, job: Job, error: str) -> Reply | Failure | None:
        if not self.compensate_path:
            return None
        assert self._http is not None, "Relay.open() first"
        payload = {
            "job": job.id,
            "error": error,
            "request": {
                "method": job.method,
                "path": job.path,
                "query": job.query,
                "headers": [list(pair) for pair in job.headers],
                "body_base64": base64.b64encode(job.body).decode(),
            },
        }
        headers = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", f"{job.id}:compensate"),
        ]
        # tracing on: the compensation's span (worker.compensator), else the job's own
        if (trace := tracing.current() or job.trace) is not None:
            headers += trace.headers()
        host = _host_of(job)
        try:
            answer = await self._http.request(
                "POST",
                self.compensate_path,
                headers,
                json.dumps(payload).encode(),
                timeout_s=self.timeout_s,
                max_body_bytes=self.max_result_bytes,
                host=host,
            )
        except TimeoutError:
            return Failure(f"compensation at {self.compensate_path} timed out", True)
        except UpstreamUnreachable as e:
            return Failure(f"compensation at {self.compensate_path} unreachable: {e}", True)
        except BodyTooLarge as e:  # only its status matters
            answer = Answer(e.status, "", [], b"")
        reply = Reply(answer.status, (), answer.body)
        if is_retryable_status(reply.status):
            return Failure(f"compensation answered {reply.status}", True, reply)
        return reply
