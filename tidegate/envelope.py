"""The job envelope: what the gateway admits and a worker executes.

An envelope is one entry of the route's request stream. It carries the
original request (method, path, query, headers, body) so that a relay can
replay it against an unchanged service, plus the job's id, route, absolute
deadline and attempt number. Headers are kept as an ordered list of pairs:
HTTP allows a name to repeat and the order can matter.

``Reply`` is what comes back: the upstream's status, headers and body, stored
as the job's result and returned to a waiting client as if proxied. Python
handlers (``tidegate worker --app module:handler``) receive a ``Job`` and return
a ``Reply``. A client's ``traceparent`` and ``tracestate`` travel among the
headers, checked at admission: ``Job.trace`` reads them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from tidegate import trace_context
from tidegate.trace_context import TraceContext

Headers = tuple[tuple[str, str], ...]

# One encoder, made once: json.dumps with options builds a new one per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _text(fields: Mapping[bytes, bytes], name: bytes) -> str:
    return fields[name].decode("utf-8")


class Job(NamedTuple):
    """One admitted request, as a worker sees it.

    A NamedTuple rather than a frozen dataclass: just as immutable, and about
    three times cheaper to build, which counts once per admitted request."""

    id: str
    route: str
    method: str
    path: str
    query: str = ""
    headers: Headers = ()
    body: bytes = b""
    deadline_ms: int = 0
    """Unix time in milliseconds after which the job is overdue."""
    attempt: int = 1

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header, case-insensitively."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return default

    @property
    def trace(self) -> TraceContext | None:
        """The client's W3C trace context, kept among the headers as the
        gateway checked it (``tidegate.trace_context``); None without one."""
        return trace_context.from_headers(self.headers)

    def meta(self) -> str:
        """Everything but the id and the body, as one compact JSON field.

        One field instead of six keeps admission cheap: every argument of the
        admit script call costs encoding time on the gateway's hot path.
        """
        return _COMPACT.encode([self.method, self.path, self.query, self.headers, self.attempt])

    @classmethod
    def from_fields(cls, route: str, fields: Mapping[bytes, bytes]) -> Job:
        """Decode a stream entry; KeyError/ValueError when it is not an envelope."""
        method, path, query, headers, attempt = json.loads(fields[b"meta"])
        return cls(
            id=_text(fields, b"job"),
            route=route,
            method=str(method),
            path=str(path),
            query=str(query),
            headers=tuple((str(k), str(v)) for k, v in headers),
            body=fields[b"body"],
            deadline_ms=int(fields.get(b"deadline_ms", b"0")),
            attempt=int(attempt),
        )

    def payload_digest(self) -> str:
        """Digest of what makes two requests "the same" for Idempotency-Key.

        Method, path, query and body; headers are left out on purpose
        (tracing ids and dates differ between honest retries).
        """
        h = hashlib.sha256()
        for part in (self.method.encode(), self.path.encode(), self.query.encode()):
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
        h.update(self.body)
        return h.hexdigest()


@dataclass(frozen=True)
class Reply:
    """An upstream's (or handler's) answer, stored as the job's result."""

    status: int
    headers: Headers = ()
    body: bytes = b""

    def header_json(self) -> str:
        return _COMPACT.encode(self.headers)

    @classmethod
    def from_hash(cls, data: Mapping[bytes, bytes]) -> Reply:
        headers = json.loads(data.get(b"headers", b"[]"))
        return cls(
            status=int(data[b"status"]),
            headers=tuple((str(k), str(v)) for k, v in headers),
            body=data.get(b"body", b""),
        )


INLINE_RESULT_BYTES = 16384
"""A stored result whose body is at most this long rides along with the job's
done notification (``lua/finish.lua``), so a waiting sync request answers
without reading it back; a larger one is read."""


class Ended(NamedTuple):
    """A job's end as its done notification carried it."""

    job_id: str
    state: str
    ended_ms: int
    """When the job reached ``state`` (Redis time, unix ms)."""
    reply: Reply


def parse_done(data: bytes) -> tuple[str, Ended | None]:
    """A done notification: the job id, and the whole outcome when it came
    along ("job \\n state \\n ended_ms \\n status \\n headers \\n body")."""
    parts = data.split(b"\n", 5)
    job_id = parts[0].decode("utf-8", "replace")
    if len(parts) < 6:
        return job_id, None
    try:
        headers = json.loads(parts[4])
        reply = Reply(
            status=int(parts[3]),
            headers=tuple((str(k), str(v)) for k, v in headers),
            body=parts[5],
        )
        return job_id, Ended(job_id, parts[1].decode(), int(parts[2]), reply)
    except (ValueError, TypeError):  # not ours to trust: read the job instead
        return job_id, None


@dataclass(frozen=True)
class Failure:
    """Why an attempt did not produce a definitive answer."""

    error: str
    retryable: bool
    reply: Reply | None = None
    """The upstream's own answer, when it gave one (a 503, say)."""
    retry_after_s: float | None = None
    """How long the upstream asked us to wait (its Retry-After), if it did."""

    @classmethod
    def result_too_large(cls, limit_bytes: int) -> Failure:
        """The definitive failure of a job whose answer exceeds ``max_result_bytes``."""
        return cls(
            f"the upstream's answer is larger than max_result_bytes ({limit_bytes} bytes); "
            "it was not stored",
            False,
        )
