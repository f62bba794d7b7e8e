"""Commands: the writes that move a job through its states.

Every accepted request is an event in its route's append-only event stream
(``accepted``, ``started``, ``succeeded``, ``failed``, ``dead_lettered``,
``cancelled``, ...). The job's projection (a hash: state, attempts,
timestamps) is a fold of those events. Appending an event and updating the
projection happen in one Lua call, and the fold is defined once
(``lua/fold.lua``), so ``replay`` can rebuild every projection from the log.

States: ``queued`` -> ``running`` -> ``succeeded``; a retryable failure goes
back to ``queued`` (parked in the route's delayed set until its retry is due,
then promoted into the stream); a final failure is ``failed`` and, in the
same call, ``dead_lettered``; a job whose attempts ran out while its worker
was lost is dead-lettered when it is picked up again; ``cancelled`` only from
``queued``. Terminal states accept no further event: the scripts check the
state before they append, which is the compare-and-set that keeps a job from
ending twice.

Whether a failure is retried, and when, is the worker's policy
(``worker.retry_policy``); the ledger records the decision it is given.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TypeVar

from tidegate.envelope import Job, Reply
from tidegate.errors import JobNotFound, Refused, TransitionRefused
from tidegate.keys import COMPENSATORS, parts_of
from tidegate.ledger.admission import Admission, Admitted, admit_call, admitted
from tidegate.ledger.base import LedgerBase
from tidegate.ledger.calls import Cancel, Compensate, Finish, Start, StartRead, Take, Taken
from tidegate.ledger.client import redis_errors
from tidegate.ledger.throttle_record import quota_call
from tidegate.settings import RouteSettings, TenantSettings


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as the worker decided it.

    ``error`` None is a success; ``retry_due_ms`` set parks a retry until then
    (unix ms); a failure without it is final. ``reply`` is stored unless the
    job is retried. ``upstream_s``, how long the work took, goes into the
    outcome's event (``upstream_ms``).
    """

    reply: Reply | None
    error: str | None = None
    retry_due_ms: int | None = None
    upstream_s: float | None = None


S = TypeVar("S", Take, StartRead)


class Commands(LedgerBase):
    async def admit(
        self,
        route: RouteSettings,
        job: Job,
        idempotency_key: str | None = None,
        tenant: TenantSettings | None = None,
        priority: str = "normal",
        callback: str = "",
    ) -> Admitted:
        """Admit one job: coalesced with concurrent admissions when the ledger
        batches them, else in a call of its own.

        Raises IdempotencyConflict, Refused (throttle or quota),
        NotReplicated, Unencodable or a RedisUnavailable."""
        admission = Admission(job, idempotency_key, tenant, priority, callback)
        if self.admissions is not None:
            return await self.admissions.admit(route, admission)
        with redis_errors("admitting a job"):
            (result,) = await self.runner.run(admit_call(route, [admission]))
        answer = admitted(result, route.partitions)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def start(self, job: Job, entry_id: str, consumer: str) -> Job | None:
        """Record the start of an attempt; the job with its attempt number, or
        None when the job needs no work (ended, cancelled, gone, or its attempts
        ran out and it was dead-lettered). Either way the entry is handled."""
        route, keys = self._job(job.id, job.route)
        with redis_errors("starting a job"):
            attempt = await self.runner.run(
                Start(
                    route=keys,
                    job_id=job.id,
                    entry_id=entry_id,
                    consumer=consumer,
                    ttl_ms=route.result_ttl_s * 1000,
                    max_attempts=route.worker.max_attempts,
                    done_channel=keys.done,
                    meta=job.meta(),
                    body=job.body,
                )
            )
        return None if attempt is None else job._replace(attempt=attempt)

    async def take(
        self, route_name: str, consumer: str, count: int, *, partition: int = 0
    ) -> list[Taken]:
        """Read up to ``count`` new entries of a partition for ``consumer`` and
        start each: a read and its starts in one round trip. Never blocks: an
        empty list when nothing waits. Raises GroupMissing when the group is gone."""
        call = self._starting(Take, route_name, consumer, count, partition)
        with redis_errors(f"taking entries of {call.route.requests}"):
            return await self.runner.run(call)

    def start_read(
        self, route_name: str, consumer: str, count: int, after_id: str, *, partition: int = 0
    ) -> StartRead:
        """The call that starts what a blocking read of a partition delivered
        to ``consumer`` (entries after ``after_id``, the newest it had read
        before), sent right behind that read
        (``groups.ConsumerGroup.read_then``): a read and its starts in one
        round trip even when the read had to wait for entries."""
        call = self._starting(StartRead, route_name, consumer, count, partition)
        call.after_id = after_id
        return call

    def _starting(
        self, kind: type[S], route_name: str, consumer: str, count: int, partition: int
    ) -> S:
        """A call that starts the entries it finds, for a partition of a route."""
        route = self.routes[route_name]
        keys = parts_of(route)[partition]
        return kind(
            route=keys,
            consumer=consumer,
            count=count,
            ttl_ms=route.result_ttl_s * 1000,
            max_attempts=route.worker.max_attempts,
            done_channel=keys.done,
            job_prefix=keys.job(""),
        )

    async def finish(self, job: Job, entry_id: str, outcome: Outcome | Reply) -> str:
        """Store the outcome, append its event(s), park a retry, XACK: one call.

        A bare ``Reply`` is a success. Returns the job's state afterwards:
        ``succeeded``; ``queued`` when a retry was parked; ``dead_lettered``
        when the failure was final (or the state that refused the outcome).
        """
        if isinstance(outcome, Reply):
            outcome = Outcome(outcome)
        route, keys = self._job(job.id, job.route)
        call = Finish.of(
            keys,
            job,
            entry_id=entry_id,
            ttl_ms=route.result_ttl_s * 1000,
            reply=outcome.reply,
            error=outcome.error,
            retry_due_ms=outcome.retry_due_ms,
            upstream_s=outcome.upstream_s,
        )
        with redis_errors("recording a job's outcome"):
            return (await self.runner.run(call)).state

    async def compensated(self, job: Job, dead_entry_id: str, status: int) -> bool:
        """Record a successful compensation and acknowledge the dead letter.

        False when the job was not waiting for one (compensated already, or
        its retention ended); the dead letter is acknowledged either way.
        """
        route, keys = self._job(job.id, job.route)
        with redis_errors("recording a compensation"):
            settled = await self.runner.run(
                Compensate(
                    route=keys,
                    job_id=job.id,
                    ttl_ms=route.result_ttl_s * 1000,
                    status=status,
                    dead_entry_id=dead_entry_id,
                    group=COMPENSATORS,
                )
            )
        return settled.ok

    async def take_quota(self, route: RouteSettings, tenant: TenantSettings) -> None:
        """Take a token from the tenant's quota on a proxy route: one held from
        an earlier lease (``quota_leases``), else from Redis (coalesced with
        concurrent calls when the ledger batches), with a lease when the
        bucket has tokens to spare. Raises Refused when the quota is used up,
        or a RedisUnavailable."""
        quota = tenant.quota
        if quota is None:
            return
        key = (route.name, tenant.name)
        leases = self.quota_leases
        while not leases.spend(key):
            arrival = leases.arrival(key)
            if arrival is None:
                break
            await asyncio.shield(arrival)  # a lease on its way: spend from it
        else:
            return
        asked = leases.ask(key)
        try:
            with redis_errors("checking a quota"):
                answer = await self.runner.run(
                    quota_call(route.name, tenant.name, quota, max(1, asked))
                )
        except BaseException:  # cancelled included: the next request sizes the lease
            leases.failed(key, asked)
            raise
        if isinstance(answer, Refused):
            leases.failed(key, asked)
            raise answer
        leases.taken(key, asked, answer)

    async def cancel(self, job_id: str) -> None:
        """Cancel a queued job; TransitionRefused once it runs or has ended."""
        route, keys = self._route(job_id)
        with redis_errors("cancelling a job"):
            settled = await self.runner.run(
                Cancel(
                    route=keys,
                    job_id=job_id,
                    ttl_ms=route.result_ttl_s * 1000,
                    done_channel=keys.done,
                )
            )
        if not settled.ok:
            if not settled.state:
                raise JobNotFound(f"no job {job_id}")
            raise TransitionRefused(job_id, settled.state, "cancel")
