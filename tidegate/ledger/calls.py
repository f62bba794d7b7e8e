"""One small dataclass per Lua script call: named fields instead of counted positions.

A script reads ``KEYS[n]`` and ``ARGV[n]`` by position; each call class here
declares the same lists by name, in the same order: ``KEYS`` names the key
slots (each a ``RouteKeys`` attribute), the dataclass fields are the
arguments, and the script's header comment (``-- KEYS: ...``, ``-- ARGV:
...``) lists the same names. ``tests/unit/ledger/test_calls.py`` reads every
header and checks the two sides agree, so an argument added on one side only
fails a test instead of shifting every later one.

Each call also reads its own reply (``read``), so a caller gets a typed
value, never a raw Redis array. Calls are run by ``tidegate.ledger.runner``,
plainly or coalesced with concurrent ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tidegate.envelope import Reply
from tidegate.errors import IdempotencyConflict, Refused
from tidegate.keys import GROUP, RouteKeys
from tidegate.ledger.call import (
    NOT_AN_ARG,
    Arg,
    R,
    ScriptCall,
    Settled,
    arg_names,
    argv_of,
    refusal,
    settled,
    text,
)

__all__ = ["Arg", "R", "ScriptCall", "Settled", "arg_names", "text"]


# -- admission ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AdmitJob:
    """One job of an admit call; ARGV per job, in order."""

    PER_JOB_KEYS: ClassVar[tuple[str, ...]] = ("job", "idempotency", "quota", "share")
    job_id: str
    has_idempotency_key: bool
    payload_digest: str
    method: str
    path: str
    meta: str
    body: bytes
    tenant: str
    quota_rate_per_s: float
    quota_burst: int
    weight: float
    priority: int
    idempotency_digest: str = field(default="", metadata=NOT_AN_ARG)

    def argv(self) -> list[Arg]:
        return argv_of(self)

    def keys(self, route: RouteKeys) -> list[str]:
        out = [route.job(self.job_id)]
        if self.has_idempotency_key:
            out.append(route.idempotency(self.idempotency_digest))
        if self.quota_rate_per_s > 0:
            out.append(route.quota(self.tenant))
        if self.tenant:
            out.append(route.share(self.tenant))
        return out


AdmitResult = tuple[str, str] | IdempotencyConflict | Refused
"""Per job: (``new`` | ``duplicate``, job id), or why it was not admitted."""


@dataclass(frozen=True, kw_only=True)
class Admit(ScriptCall[list[AdmitResult]]):
    SCRIPT: ClassVar[str] = "admit"
    KEYS: ClassVar[tuple[str, ...]] = (
        "requests",
        "events",
        "deadlines",
        "throttle",
        "refused",
        "tenants_active",
        "tenant_weights",
    )
    ttl_ms: int
    deadline_s: float
    share_window_ms: int
    jobs: Sequence[AdmitJob] = field(metadata=NOT_AN_ARG)
    """ARGV per job (``AdmitJob``), after the fields above."""

    def keys(self) -> list[str]:
        out = [getattr(self.route, name) for name in self.KEYS]
        for job in self.jobs:
            out += job.keys(self.route)
        return out

    def argv(self) -> list[Arg]:
        out = argv_of(self)
        for job in self.jobs:
            out += job.argv()
        return out

    def read(self, reply: Any) -> list[AdmitResult]:
        out: list[AdmitResult] = []
        for i in range(0, len(reply), 3):
            outcome, job_id = text(reply[i]), text(reply[i + 1])
            if outcome == "conflict":
                out.append(IdempotencyConflict(f"Idempotency-Key already used for job {job_id}"))
            elif outcome in ("new", "duplicate"):
                out.append((outcome, job_id))
            elif outcome in ("throttled", "quota"):
                out.append(refusal("capacity" if outcome == "throttled" else "quota", reply[i + 2]))
            else:
                raise RuntimeError(f"admit script answered {outcome!r}")
        return out


@dataclass(frozen=True, kw_only=True)
class Quota(ScriptCall[Refused | None]):
    """Take a token from a tenant's quota on a route that does not queue."""

    SCRIPT: ClassVar[str] = "quota"
    KEYS: ClassVar[tuple[str, ...]] = ("quota", "refused")
    tenant: str = field(metadata=NOT_AN_ARG)
    rate_per_s: float
    burst: int

    def keys(self) -> list[str]:
        return [self.route.quota(self.tenant), self.route.refused]

    def read(self, reply: Any) -> Refused | None:
        return None if int(reply[0]) else refusal("quota", reply[1])


# -- a worker's attempt ------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Start(ScriptCall[int | None]):
    """Begin an attempt; the attempt number, or None when the job needs no work."""

    SCRIPT: ClassVar[str] = "start"
    KEYS: ClassVar[tuple[str, ...]] = ("requests", "events", "job", "dead", "deadlines")
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


@dataclass(frozen=True, kw_only=True)
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

    @classmethod
    def of(
        cls,
        route: RouteKeys,
        *,
        job_id: str,
        entry_id: str,
        ttl_ms: int,
        reply: Reply | None,
        error: str | None,
        retry_due_ms: int | None,
        meta: str,
        body: bytes,
    ) -> Finish:
        """``error`` None is a success; ``retry_due_ms`` set parks a retry."""
        retryable = retry_due_ms is not None
        return cls(
            route=route,
            job_id=job_id,
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
            meta=meta,
            body=body,
        )

    def read(self, reply: Any) -> Settled:
        return settled(reply)


@dataclass(frozen=True, kw_only=True)
class Compensate(ScriptCall[Settled]):
    SCRIPT: ClassVar[str] = "compensate"
    KEYS: ClassVar[tuple[str, ...]] = ("events", "job", "dead", "deadlines")
    job_id: str
    ttl_ms: int
    status: int
    dead_entry_id: str
    group: str

    def read(self, reply: Any) -> Settled:
        return settled(reply)


# -- the job API and upkeep --------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Cancel(ScriptCall[Settled]):
    SCRIPT: ClassVar[str] = "cancel"
    KEYS: ClassVar[tuple[str, ...]] = ("events", "job", "deadlines")
    job_id: str
    ttl_ms: int
    done_channel: str

    def read(self, reply: Any) -> Settled:
        return settled(reply)


@dataclass(frozen=True, kw_only=True)
class Overdue(ScriptCall[Settled]):
    """Settle one job past its deadline: ``expired`` or ``requeued``."""

    SCRIPT: ClassVar[str] = "overdue"
    KEYS: ClassVar[tuple[str, ...]] = ("requests", "events", "job", "deadlines")
    job_id: str
    ttl_ms: int
    done_channel: str
    max_requeues: int
    deadline_s: float
    group: str = GROUP

    def read(self, reply: Any) -> Settled:
        return settled(reply)


@dataclass(frozen=True, kw_only=True)
class Promoted:
    moved: int
    next_due_s: float | None
    """When the next waiting retry is due (unix s); None when none waits."""


@dataclass(frozen=True, kw_only=True)
class Promote(ScriptCall[Promoted]):
    SCRIPT: ClassVar[str] = "promote"
    KEYS: ClassVar[tuple[str, ...]] = ("requests", "delayed")
    now_ms: int
    most: int

    def read(self, reply: Any) -> Promoted:
        moved, next_ms = int(reply[0]), int(reply[1])
        return Promoted(moved=moved, next_due_s=next_ms / 1000 if next_ms >= 0 else None)


@dataclass(frozen=True, kw_only=True)
class Replay(ScriptCall[bool]):
    """Fold one logged event into its projection again; False when refused."""

    SCRIPT: ClassVar[str] = "replay"
    KEYS: ClassVar[tuple[str, ...]] = ("job", "deadlines")
    event_id: str
    ttl_ms: int
    fields: tuple[bytes | str, ...]
    job_id: str = field(metadata=NOT_AN_ARG)
    """Among the fields already; here it names the job key slot."""

    def read(self, reply: Any) -> bool:
        return int(reply) == 1


CALLS: tuple[type[ScriptCall[Any]], ...] = (
    Admit,
    Quota,
    Start,
    Finish,
    Compensate,
    Cancel,
    Overdue,
    Promote,
    Replay,
)
"""Every script call; ``scripts.SCRIPTS`` loads one script per entry."""
