"""Script calls of admission: a batch of jobs admitted, a quota taken."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tidegate.errors import IdempotencyConflict, Refused
from tidegate.keys import RouteKeys
from tidegate.ledger.calls.base import (
    NOT_AN_ARG,
    Arg,
    ScriptCall,
    argv_of,
    refusal,
    text,
)


@dataclass(kw_only=True, slots=True)
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
    callback: str
    trace: str
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


@dataclass(kw_only=True, slots=True)
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


@dataclass(kw_only=True, slots=True)
class Quota(ScriptCall[Refused | int]):
    """Take tokens from a tenant's quota on a route that does not queue: one,
    and up to ``want`` from the bucket's upper half. The tokens taken (at
    least one), or the refusal."""

    SCRIPT: ClassVar[str] = "quota"
    KEYS: ClassVar[tuple[str, ...]] = ("quota", "refused")
    tenant: str = field(metadata=NOT_AN_ARG)
    rate_per_s: float
    burst: int
    want: int = 1

    def keys(self) -> list[str]:
        return [self.route.quota(self.tenant), self.route.refused]

    def read(self, reply: Any) -> Refused | int:
        return int(reply[2]) if int(reply[0]) else refusal("quota", reply[1])
