"""Script calls of a worker's attempt: its start (or a read that starts), its end,
a compensation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from tidegate.envelope import INLINE_RESULT_BYTES, Job, Reply
from tidegate.keys import GROUP, RouteKeys
from tidegate.ledger.calls.base import (
    R,
    ScriptCall,
    Settled,
    settled,
    text,
)


@dataclass(kw_only=True, slots=True)
class Start(ScriptCall[int | None]):
    """Begin an attempt; the attempt number, or None when the job needs no work."""

    SCRIPT: ClassVar[str] = "start"
    KEYS: ClassVar[tuple[str, ...]] = (
        "requests",
        "events",
        "job",
        "dead",
        "deadlines",
        "callbacks",
    )
    job_id: str
    entry_id: str
    group: str = GROUP
    consumer: str
    ttl_ms: int
    max_attempts: int
    done_channel: str
    meta: str
    body: bytes

    def read(self, reply: Any) -> int | None:
        return int(reply[1]) if int(reply[0]) == 1 else None


class Taken(NamedTuple):
    """An entry ``Take`` read and started."""

    entry_id: bytes
    fields: dict[bytes, bytes]
    attempt: int | None
    """The attempt to run; None: nothing to run (``state`` says why)."""
    state: str
    """``running``; the job's state when it needs no work; ``unreadable``: not
    an envelope, left pending to be dead-lettered."""


@dataclass(kw_only=True, slots=True)
class _StartsEntries(ScriptCall[R]):
    """What a call that starts the entries it finds needs (``Take``, ``StartRead``)."""

    KEYS: ClassVar[tuple[str, ...]] = ("requests", "events", "dead", "deadlines", "callbacks")
    group: str = GROUP
    consumer: str
    count: int
    ttl_ms: int
    max_attempts: int
    done_channel: str
    job_prefix: str


@dataclass(kw_only=True, slots=True)
class Take(_StartsEntries[list[Taken]]):
    """Read new entries and start each, in one call (never blocks)."""

    SCRIPT: ClassVar[str] = "take"

    def read(self, reply: Any) -> list[Taken]:
        out = []
        for entry_id, flat, go, verdict in reply:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            if int(go) == 1:
                out.append(Taken(entry_id, fields, int(verdict), "running"))
            else:
                out.append(Taken(entry_id, fields, None, text(verdict)))
        return out


class Verdict(NamedTuple):
    """What ``StartRead`` decided for an entry: as ``Taken``, without the fields."""

    attempt: int | None
    state: str


@dataclass(kw_only=True, slots=True)
class StartRead(_StartsEntries[dict[bytes, Verdict]]):
    """Start what the blocking read sent right before this call delivered:
    the consumer's entries after ``after_id`` delivered once (never blocks)."""

    SCRIPT: ClassVar[str] = "start_read"
    after_id: str = "0-0"
    """The newest entry the consumer had read before (nothing to start at or before it)."""

    def read(self, reply: Any) -> dict[bytes, Verdict]:
        return {
            entry_id: Verdict(int(verdict), "running")
            if int(go) == 1
            else Verdict(None, text(verdict))
            for entry_id, go, verdict in reply
        }


@dataclass(kw_only=True, slots=True)
class Finish(ScriptCall[Settled]):
    """End an attempt: result, event(s), retry or dead letter, XACK."""

    SCRIPT: ClassVar[str] = "finish"
    KEYS: ClassVar[tuple[str, ...]] = (
        "requests",
        "events",
        "job",
        "result",
        "dead",
        "delayed",
        "deadlines",
        "callbacks",
    )
    job_id: str
    entry_id: str
    group: str = GROUP
    ttl_ms: int
    event: str
    retryable: bool
    status: str
    error: str
    store_result: bool
    result_headers: str
    result_body: bytes
    done_channel: str
    retry_due_ms: int
    meta: str
    body: bytes
    upstream_ms: str = ""
    """How long the attempt's work took, in ms ('' unknown); kept in the event."""
    inline_bytes: int = INLINE_RESULT_BYTES
    """A stored result this small rides along with the done notification."""

    @classmethod
    def of(
        cls,
        route: RouteKeys,
        job: Job,
        *,
        entry_id: str,
        ttl_ms: int,
        reply: Reply | None,
        error: str | None,
        retry_due_ms: int | None,
        upstream_s: float | None = None,
    ) -> Finish:
        """The end of ``job``'s attempt: ``error`` None is a success;
        ``retry_due_ms`` set parks a retry.

        The request itself (meta and body) goes along only with a failure: a
        retry parks it in the delayed set, a final failure copies it into the
        dead letter. A success stores the result alone, so a request body does
        not travel back to Redis with every job that succeeds."""
        retryable = retry_due_ms is not None
        failed = error is not None
        return cls(
            route=route,
            job_id=job.id,
            entry_id=entry_id,
            ttl_ms=ttl_ms,
            event="succeeded" if error is None else "failed",
            retryable=retryable,
            status=str(reply.status) if reply else "",
            error=error or "",
            store_result=reply is not None and not retryable,
            result_headers=reply.header_json() if reply else "",
            result_body=reply.body if reply else b"",
            done_channel=route.done,
            retry_due_ms=retry_due_ms or 0,
            meta=job.meta() if failed else "",
            body=job.body if failed else b"",
            upstream_ms="" if upstream_s is None else str(round(upstream_s * 1000, 3)),
        )

    def read(self, reply: Any) -> Settled:
        return settled(reply)


@dataclass(kw_only=True, slots=True)
class Compensate(ScriptCall[Settled]):
    SCRIPT: ClassVar[str] = "compensate"
    KEYS: ClassVar[tuple[str, ...]] = ("events", "job", "dead", "deadlines", "callbacks")
    job_id: str
    ttl_ms: int
    status: int
    dead_entry_id: str
    group: str

    def read(self, reply: Any) -> Settled:
        return settled(reply)
