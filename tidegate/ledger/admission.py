"""Admission: one request to admit, its Admit call, and admissions coalesced.

``Admission`` is what the gateway hands over: the job, the client's
Idempotency-Key, the tenant and the priority class. ``admit_call`` turns a
batch of admissions to one partition of a route (one Cluster slot) into one
``Admit`` script call (one call for
many jobs: the client-side cost of encoding a command and parsing its reply
dominates, so the gateway pays it once per batch, not per job).

``AdmissionQueue`` is the batched way to admit: concurrent admissions queue
up and one flusher sends whatever has gathered, one Admit call per route and
partition, all in one pipeline (with WAIT when a route asks for replica
acknowledgement), then the next batch. Under light load a batch holds one job
and adds no delay; under load batches grow while the previous is in flight.

One bad request fails alone: should anything in a batch fail to encode
(nothing has been sent then), the batch is sifted: each admission is encoded
on its own, those that fail get ``Unencodable``, and the rest are sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

from tidegate import idempotency, trace_context
from tidegate.envelope import Job
from tidegate.errors import NotReplicated, Refused, Unencodable
from tidegate.keys import RouteKeys, id_tag
from tidegate.ledger.calls import Admit, AdmitJob, AdmitResult
from tidegate.ledger.client import Connection
from tidegate.ledger.coalesce import Coalescer
from tidegate.ledger.resp import pack
from tidegate.ledger.scripts import run_calls
from tidegate.settings import PRIORITIES, RouteSettings, TenantSettings
from tidegate.throttle import share_of

SHARE_WINDOW_MS = 10_000
"""Tenants seen in this window share a throttled route's rate."""

AdmitOutcome = Literal["new", "duplicate"]


class Admitted(NamedTuple):
    """What admission did: created the job, or found it by Idempotency-Key."""

    job_id: str
    outcome: AdmitOutcome


class Admission(NamedTuple):
    """One request to admit: the job, its client's Idempotency-Key, its tenant
    (with API keys configured) and its priority class (``PRIORITIES``)."""

    job: Job
    idempotency_key: str | None = None
    tenant: TenantSettings | None = None
    priority: str = "normal"
    callback: str = ""
    """The URL the client asked to be called when the job ends ('' = none)."""


def _admit_job(item: Admission, partitions: int) -> AdmitJob:
    job, key, tenant = item.job, item.idempotency_key, item.tenant
    quota = tenant.quota if tenant else None
    quota_rate, quota_burst = (
        share_of(quota.rate_per_s, quota.bucket_size, partitions) if quota else (0.0, 0)
    )
    return AdmitJob(
        job_id=job.id,
        has_idempotency_key=bool(key),
        payload_digest=job.payload_digest() if key else "",
        method=job.method,
        path=job.path,
        meta=job.meta(),
        body=job.body,
        tenant=tenant.name if tenant else "",
        quota_rate_per_s=quota_rate,
        quota_burst=quota_burst,
        weight=tenant.weight if tenant else 1,
        priority=PRIORITIES.index(item.priority),
        callback=item.callback,
        trace=trace_context.stored(job.trace),
        idempotency_digest=idempotency.digest(key, tenant.name if tenant else "") if key else "",
    )


def admit_call(route: RouteSettings, batch: Sequence[Admission]) -> Admit:
    """One Admit call for a batch of jobs of one partition of one route."""
    return Admit(
        route=RouteKeys(route.name, id_tag(batch[0].job.id)),
        ttl_ms=route.result_ttl_s * 1000,
        deadline_s=route.deadline_s,
        share_window_ms=SHARE_WINDOW_MS,
        jobs=[_admit_job(item, route.partitions) for item in batch],
    )


def admitted(result: AdmitResult | BaseException, partitions: int = 1) -> Admitted | BaseException:
    """One job's answer, or why it was not admitted (IdempotencyConflict, Refused...).

    A refusal names one partition's bucket; the client is told the route's
    (its remaining and limit times the partitions)."""
    if isinstance(result, Refused) and partitions > 1:
        return Refused(
            result.cause,
            result.retry_after_s,
            result.remaining * partitions,
            result.limit * partitions,
            result.window_s,
        )
    if isinstance(result, BaseException):
        return result
    outcome, job_id = result
    return Admitted(job_id, "new" if outcome == "new" else "duplicate")


_Item = tuple[RouteSettings, Admission]


class AdmissionQueue(Coalescer[_Item, Admitted]):
    """Flushes queued admissions as one Admit call per route and partition (a
    Cluster slot), all in one pipeline (on a cluster: one per node)."""

    def __init__(self, redis: Connection, *, batch_max_size: int, breaker_s: float = 0.5) -> None:
        super().__init__(max_batch=batch_max_size, breaker_s=breaker_s, name="admission")
        self._redis = redis

    async def admit(self, route: RouteSettings, admission: Admission) -> Admitted:
        """Admit one job; raises RedisUnavailable, NotReplicated, IdempotencyConflict,
        Refused (throttle or quota) or Unencodable."""
        return await self.submit((route, admission))

    async def flush(self, items: Sequence[_Item]) -> list[Admitted | BaseException]:
        try:
            return await self._send(items)
        except (UnicodeEncodeError, TypeError, ValueError):
            pass  # raised while encoding, before anything was sent: sift the batch
        out: list[Admitted | BaseException] = []
        good: list[int] = []
        for index, (route, admission) in enumerate(items):
            try:
                call = admit_call(route, [admission])
                pack([*call.keys(), *call.argv()])
            except (UnicodeEncodeError, TypeError, ValueError):
                out.append(
                    Unencodable(
                        "A part of the request (a header, the path or a key) cannot be "
                        "encoded as UTF-8."
                    )
                )
            else:
                out.append(RuntimeError("unanswered"))
                good.append(index)
        if good:
            sent = await self._send([items[i] for i in good])
            for i, result in zip(good, sent, strict=True):
                out[i] = result
        return out

    async def _send(self, items: Sequence[_Item]) -> list[Admitted | BaseException]:
        groups: dict[str, list[int]] = {}
        for index, (_, admission) in enumerate(items):
            groups.setdefault(id_tag(admission.job.id), []).append(index)
        routes = [items[indexes[0]][0] for indexes in groups.values()]
        calls = [
            admit_call(route, [items[i][1] for i in indexes])
            for route, indexes in zip(routes, groups.values(), strict=True)
        ]
        need, timeout_s = max((r.replicas_ack, r.replicas_ack_timeout_s) for r in routes)
        replies, acked = await run_calls(
            self._redis, calls, wait=(need, int(timeout_s * 1000)) if need else None
        )
        out: list[Admitted | BaseException] = [RuntimeError("unanswered")] * len(items)
        for route, indexes, reply in zip(routes, groups.values(), replies, strict=True):
            if (
                route.replicas_ack
                and acked < route.replicas_ack
                and not isinstance(reply, Exception)
            ):
                reply = NotReplicated(
                    f"{acked} of {route.replicas_ack} Redis replica(s) acknowledged the "
                    "admission in time"
                )
            results: Sequence[AdmitResult | BaseException] = (
                [reply] * len(indexes) if isinstance(reply, Exception) else reply
            )
            for i, result in zip(indexes, results, strict=True):
                out[i] = admitted(result, route.partitions)
        return out
