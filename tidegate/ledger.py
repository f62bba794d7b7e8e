"""The job ledger: the event log of every job and the projection folded from it.

Every accepted request is an event in its route's append-only event stream
(``accepted``, ``started``, ``succeeded``, ``failed``, ``dead_lettered``,
``cancelled``). The job's
projection (a hash: state, attempts, timestamps) is a fold of those events.
Appending an event and updating the projection happen in one Lua call, and
the fold is defined once (``lua/fold.lua``), so ``replay`` can wipe every
projection of a route and rebuild it exactly from the log.

States: ``queued`` -> ``running`` -> ``succeeded``; a retryable failure goes
back to ``queued`` (parked in the route's delayed set for its backoff, then
promoted into the stream); a final failure is ``failed`` and, in the same
call, ``dead_lettered`` (the entry is copied to the dead-letter stream); a job
whose attempts ran out while its worker was lost is dead-lettered when it is
picked up again; ``cancelled`` only from ``queued``. The attempt number comes
from the projection, so a redelivered entry counts as another attempt.
Terminal states (succeeded, dead_lettered, cancelled, expired) accept no
further event: the scripts check the state before they append, which is the
compare-and-set that keeps a job from ending twice.

Projections and results of finished jobs expire ``result_ttl_s`` after the
job ended (the expiry is computed from the event time, so a replay sets the
same expiry, and a job whose retention has passed is not brought back).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tidegate import scripts
from tidegate.backoff import backoff_s
from tidegate.envelope import Failure, Job, Reply
from tidegate.errors import (
    IdempotencyConflict,
    JobNotFound,
    Refused,
    TransitionRefused,
)
from tidegate.keys import COMPENSATORS, GROUP, RouteKeys, route_of
from tidegate.redis_client import text as _text
from tidegate.redis_client import unavailable_as_error
from tidegate.settings import PRIORITIES, RouteSettings, TenantSettings

TERMINAL_STATES = frozenset({"succeeded", "cancelled", "dead_lettered", "compensated", "expired"})
OVERDUE_BATCH = 100

AdmitOutcome = Literal["new", "duplicate"]


class Admitted(NamedTuple):
    """What admission did: created the job, or found it by Idempotency-Key."""

    job_id: str
    outcome: AdmitOutcome


def idempotency_digest(key: str, tenant: str = "") -> str:
    """Keys are stored hashed (a client's key may carry meaning of its own) and
    belong to a tenant: another tenant's equal key is another record, so one
    tenant can neither redeem nor probe another's keys. Without tenants the
    digest is of the key alone."""
    text = f"{tenant}\n{key}" if tenant else key
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Admission(NamedTuple):
    """One request to admit: the job, its client's Idempotency-Key, its tenant
    (with API keys configured) and its priority class (``PRIORITIES``)."""

    job: Job
    idempotency_key: str | None = None
    tenant: TenantSettings | None = None
    priority: str = "normal"


SHARE_WINDOW_MS = 10_000
"""Tenants seen in this window share a throttled route's rate."""


def admit_call(
    route: RouteSettings, batch: Sequence[Admission]
) -> tuple[str, list[str], list[scripts.Arg]]:
    """One admit script call for a batch of jobs of one route."""
    keys = RouteKeys(route.name)
    call_keys = [
        keys.requests,
        keys.events,
        keys.deadlines,
        keys.throttle,
        keys.refused,
        keys.tenants_active,
        keys.tenant_weights,
    ]
    args: list[scripts.Arg] = [route.result_ttl_s * 1000, route.deadline_s, SHARE_WINDOW_MS]
    for item in batch:
        job, key, tenant = item.job, item.idempotency_key, item.tenant
        call_keys.append(keys.job(job.id))
        if key:
            call_keys.append(
                keys.idempotency(idempotency_digest(key, tenant.name if tenant else ""))
            )
        quota = tenant.quota if tenant else None
        if tenant and quota:
            call_keys.append(keys.quota(tenant.name))
        if tenant:
            call_keys.append(keys.share(tenant.name))
        digest = job.payload_digest() if key else ""
        args += [job.id, 1 if key else 0, digest, job.method, job.path, job.meta(), job.body]
        args += [
            tenant.name if tenant else "",
            quota.rate_per_s if quota else 0,
            quota.bucket_size if quota else 0,
            tenant.weight if tenant else 1,
            PRIORITIES.index(item.priority),
        ]
    return "admit", call_keys, args


def admit_results(reply: Any) -> list[Admitted | IdempotencyConflict | Refused]:
    """Interpret the admit script's answer, one entry per job of the batch."""
    out: list[Admitted | IdempotencyConflict | Refused] = []
    for i in range(0, len(reply), 3):
        outcome, job_id = _text(reply[i]), _text(reply[i + 1])
        if outcome == "conflict":
            out.append(IdempotencyConflict(f"Idempotency-Key already used for job {job_id}"))
        elif outcome in ("new", "duplicate"):
            out.append(Admitted(job_id, "new" if outcome == "new" else "duplicate"))
        elif outcome in ("throttled", "quota"):
            retry_ms, remaining, limit, window_s = (int(x) for x in _text(reply[i + 2]).split(","))
            cause = "capacity" if outcome == "throttled" else "quota"
            out.append(Refused(cause, retry_ms / 1000, remaining, limit, window_s))
        else:
            raise RuntimeError(f"admit script answered {outcome!r}")
    return out


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class TrimReport:
    requests: int
    events: int
    dead: int


@dataclass(frozen=True)
class ReplayReport:
    events: int
    jobs: int
    refused: int


class Ledger:
    """Reads and writes jobs of the configured routes."""

    def __init__(
        self,
        redis: Redis,
        routes: Sequence[RouteSettings],
        batcher: scripts.ScriptBatcher | None = None,
    ) -> None:
        self.redis = redis
        self.routes: Mapping[str, RouteSettings] = {r.name: r for r in routes}
        self.batcher = batcher
        """When set, script calls are coalesced with those of concurrent jobs."""

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[scripts.Arg]) -> Any:
        if self.batcher is not None:
            return await self.batcher.call(name, keys, args)
        return await scripts.call(self.redis, name, keys, args)

    def _route(self, job_id: str) -> RouteSettings:
        name = route_of(job_id)
        route = self.routes.get(name) if name else None
        if route is None:
            raise JobNotFound(f"no job {job_id}")
        return route

    async def admit(
        self,
        route: RouteSettings,
        job: Job,
        idempotency_key: str | None,
        tenant: TenantSettings | None = None,
        priority: str = "normal",
    ) -> Admitted:
        """Admit one job on its own (the gateway batches; this is for tools and tests).

        Raises IdempotencyConflict, or Refused by the throttle or a quota."""
        name, keys, args = admit_call(route, [Admission(job, idempotency_key, tenant, priority)])
        with unavailable_as_error("admitting a job"):
            reply = await self._call(name, keys, args)
        result = admit_results(reply)[0]
        if isinstance(result, IdempotencyConflict | Refused):
            raise result
        return result

    async def start(self, job: Job, entry_id: str, consumer: str) -> Job | None:
        """Record the start of an attempt; the job with its attempt number, or
        None when the job needs no work (ended, cancelled, gone, or its attempts
        ran out and it was dead-lettered). Either way the entry is handled."""
        route, keys = self.routes[job.route], RouteKeys(job.route)
        with unavailable_as_error("starting a job"):
            reply = await self._call(
                "start",
                [keys.requests, keys.events, keys.job(job.id), keys.dead, keys.deadlines],
                [
                    job.id,
                    entry_id,
                    GROUP,
                    consumer,
                    route.result_ttl_s * 1000,
                    route.worker.max_attempts,
                    keys.done,
                    job.meta(),
                    job.body,
                ],
            )
        if int(reply[0]) != 1:
            return None
        return job._replace(attempt=int(reply[1]))

    async def finish(
        self, job: Job, entry_id: str, outcome: Reply | Failure, *, now_s: float | None = None
    ) -> str:
        """Store the outcome, append its event(s), schedule a retry, XACK: one call.

        Returns the job's state afterwards: ``succeeded``; ``queued`` when a
        retryable failure with attempts left was parked for its backoff;
        ``dead_lettered`` when the failure was final.
        """
        route, keys = self.routes[job.route], RouteKeys(job.route)
        settings = route.worker
        reply: Reply | None
        due_ms = 0
        if isinstance(outcome, Reply):
            etype, retryable, error, reply = "succeeded", False, "", outcome
        else:
            etype, error, reply = "failed", outcome.error, outcome.reply
            retryable = outcome.retryable and job.attempt < settings.max_attempts
            if reply is None and not retryable:
                reply = failure_reply(job, outcome)
            if retryable:
                delay_s = backoff_s(
                    job.attempt,
                    settings.backoff_base_s,
                    settings.backoff_max_s,
                    outcome.retry_after_s,
                )
                due_ms = int(((time.time() if now_s is None else now_s) + delay_s) * 1000)
        store = reply is not None and not retryable
        args: list[scripts.Arg] = [
            job.id,
            entry_id,
            GROUP,
            route.result_ttl_s * 1000,
            etype,
            int(retryable),
            str(reply.status) if reply else "",
            error,
            int(store),
            reply.header_json() if reply else "",
            reply.body if reply else b"",
            keys.done,
            due_ms,
            job.meta(),
            job.body,
        ]
        call_keys = [
            keys.requests,
            keys.events,
            keys.job(job.id),
            keys.result(job.id),
            keys.dead,
            keys.delayed,
            keys.deadlines,
        ]
        with unavailable_as_error("recording a job's outcome"):
            answer = await self._call("finish", call_keys, args)
        return _text(answer[1])

    async def compensated(self, job: Job, dead_entry_id: str, status: int) -> bool:
        """Record a successful compensation and acknowledge the dead letter.

        False when the job was not waiting for one (compensated already, or
        its retention ended); the dead letter is acknowledged either way.
        """
        route, keys = self.routes[job.route], RouteKeys(job.route)
        with unavailable_as_error("recording a compensation"):
            reply = await self._call(
                "compensate",
                [keys.events, keys.job(job.id), keys.dead, keys.deadlines],
                [job.id, route.result_ttl_s * 1000, status, dead_entry_id, COMPENSATORS],
            )
        return int(reply[0]) == 1

    async def reconcile(self, route_name: str, *, now_s: float | None = None) -> Counter[str]:
        """Settle jobs past their deadline with no end; counts per action.

        Reads the deadline index (no scan), then settles each overdue job in
        its own atomic call, per the route's ``worker.on_deadline``: ``expired``,
        or ``requeued`` (a new deadline; back in the stream when its entry was
        lost) up to ``worker.max_requeues`` times. Many reconcilers may run at
        once: each change is an append the job's state must allow.
        """
        route, keys = self.routes[route_name], RouteKeys(route_name)
        now_ms = int((time.time() if now_s is None else now_s) * 1000)
        max_requeues = route.worker.max_requeues if route.worker.on_deadline == "requeue" else 0
        actions: Counter[str] = Counter()
        with unavailable_as_error("reconciling overdue jobs"):
            overdue: Any = await self.redis.zrangebyscore(
                keys.deadlines, "-inf", now_ms, start=0, num=OVERDUE_BATCH
            )
            for raw in overdue:
                job_id = _text(raw)
                ok, action = await self._call(
                    "overdue",
                    [keys.requests, keys.events, keys.job(job_id), keys.deadlines],
                    [
                        job_id,
                        route.result_ttl_s * 1000,
                        keys.done,
                        max_requeues,
                        route.deadline_s,
                        GROUP,
                    ],
                )
                if int(ok):
                    actions[_text(action)] += 1
        return actions

    async def trim(self, route_name: str, *, now_s: float | None = None) -> TrimReport:
        """Bound memory: drop what no one needs any more.

        - request stream: entries before the oldest one still pending or
          undelivered (all acknowledged); the group's lag stays exact;
        - event log: events older than ``result_ttl_s + deadline_s`` (by then
          the job has ended, been reconciled, and its projection has expired);
        - dead-letter stream: entries older than ``dead_letter_retention_s``,
          never one still waiting for its compensation.
        """
        route, keys = self.routes[route_name], RouteKeys(route_name)
        now_ms = int((time.time() if now_s is None else now_s) * 1000)
        with unavailable_as_error("trimming streams"):
            requests = await self._trim_consumed(keys.requests, GROUP, None)
            events_floor = now_ms - int((route.result_ttl_s + route.deadline_s) * 1000)
            events = int(
                await self.redis.xtrim(keys.events, minid=f"{events_floor}-0", approximate=False)
            )
            dead_floor = now_ms - int(route.worker.dead_letter_retention_s * 1000)
            dead = await self._trim_consumed(keys.dead, COMPENSATORS, dead_floor)
        return TrimReport(requests=requests, events=events, dead=dead)

    async def _trim_consumed(self, stream: str, group: str, floor_ms: int | None) -> int:
        """Trim entries the group is done with (and, with a floor, older than it)."""
        try:
            groups: Any = await self.redis.xinfo_groups(stream)
        except ResponseError:  # no stream yet
            return 0
        info = next((g for g in groups if _text(g["name"]) == group), None)
        if info is None:
            return 0
        pending: Any = await self.redis.xpending(stream, group)
        if pending["pending"]:
            threshold = _text(pending["min"])
        else:
            ms, _, seq = _text(info["last-delivered-id"]).partition("-")
            threshold = f"{ms}-{int(seq) + 1}"
        if floor_ms is not None and _stream_id(threshold) > (floor_ms, 0):
            threshold = f"{floor_ms}-0"
        return int(await self.redis.xtrim(stream, minid=threshold, approximate=False))

    async def promote(
        self, route_name: str, *, now_s: float | None = None, most: int = 100
    ) -> tuple[int, float | None]:
        """Move retries whose backoff has passed into the request stream.

        Returns how many moved and when the next waiting retry is due (unix s).
        """
        keys = RouteKeys(route_name)
        now_ms = int((time.time() if now_s is None else now_s) * 1000)
        with unavailable_as_error("promoting due retries"):
            moved, next_ms = await self._call(
                "promote", [keys.requests, keys.delayed], [now_ms, most]
            )
        return int(moved), (int(next_ms) / 1000 if int(next_ms) >= 0 else None)

    async def cancel(self, job_id: str) -> None:
        """Cancel a queued job; TransitionRefused once it runs or has ended."""
        route = self._route(job_id)
        keys = RouteKeys(route.name)
        with unavailable_as_error("cancelling a job"):
            ok, state = await self._call(
                "cancel",
                [keys.events, keys.job(job_id), keys.deadlines],
                [job_id, route.result_ttl_s * 1000, keys.done],
            )
        if not int(ok):
            state = _text(state)
            if not state:
                raise JobNotFound(f"no job {job_id}")
            raise TransitionRefused(job_id, state, "cancel")

    async def projection(self, job_id: str) -> dict[str, str]:
        """The job's current state; JobNotFound when unknown or expired."""
        route = self._route(job_id)
        with unavailable_as_error("reading a job"):
            raw = await self.redis.hgetall(RouteKeys(route.name).job(job_id))
        if not raw:
            raise JobNotFound(f"no job {job_id}")
        return {_text(k): _text(v) for k, v in raw.items()}

    async def states(self, job_ids: Sequence[str]) -> list[str | None]:
        """The states of many jobs in one round trip (None: unknown)."""
        if not job_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(RouteKeys(self._route(job_id).name).job(job_id), "state")
        with unavailable_as_error("reading job states"):
            values = await pipe.execute()
        return [_text(v) if v is not None else None for v in values]

    async def result(self, job_id: str) -> Reply | None:
        """The stored response once the job has one, else None."""
        route = self._route(job_id)
        with unavailable_as_error("reading a result"):
            raw: Any = await self.redis.hgetall(RouteKeys(route.name).result(job_id))
        return Reply.from_hash(raw) if raw else None

    async def events(self, job_id: str) -> list[dict[str, str]]:
        """The job's events, oldest first, each with its id and time."""
        projection = await self.projection(job_id)
        keys = RouteKeys(self._route(job_id).name)
        ids = [i for i in projection.get("events", "").split(",") if i]
        pipe = self.redis.pipeline(transaction=False)
        for event_id in ids:
            pipe.xrange(keys.events, event_id, event_id)
        with unavailable_as_error("reading job events"):
            found = await pipe.execute()
        out = []
        for entries in found:
            for event_id, fields in entries:
                event = {_text(k): _text(v) for k, v in fields.items()}
                event_id = _text(event_id)
                out.append({"id": event_id, "at_ms": event_id.split("-")[0], **event})
        return out

    async def replay(self, route_name: str, *, page: int = 500) -> ReplayReport:
        """Rebuild every projection of a route from its event stream."""
        route = self.routes[route_name]
        keys = RouteKeys(route_name)
        ttl_ms = route.result_ttl_s * 1000
        start, events, refused = "-", 0, 0
        jobs: set[str] = set()
        while True:
            with unavailable_as_error("reading the event log"):
                batch: Any = await self.redis.xrange(keys.events, start, "+", count=page)
            if not batch:
                break
            calls: list[tuple[str, Sequence[str], Sequence[scripts.Arg]]] = []
            for event_id, fields in batch:
                job_id = _text(fields[b"job"])
                jobs.add(job_id)
                args: list[scripts.Arg] = [_text(event_id), ttl_ms]
                for k, v in fields.items():
                    args += [k, v]
                calls.append(("replay", [keys.job(job_id), keys.deadlines], args))
            with unavailable_as_error("replaying events"):
                results = await scripts.run_pipeline(self.redis, calls)
            for value in results:
                if isinstance(value, Exception):
                    raise value
                events += 1
                refused += int(value) == 0
            start = "(" + _text(batch[-1][0])
        return ReplayReport(events=events, jobs=len(jobs), refused=refused)


def failure_reply(job: Job, failure: Failure) -> Reply:
    """The result stored when a job finally fails without an upstream answer."""
    body = {
        "type": "https://tidegate.io/problems/job-failed",
        "title": "The job failed",
        "status": 502,
        "detail": failure.error,
        "job": job.id,
        "attempts": job.attempt,
    }
    return Reply(
        status=502,
        headers=(("Content-Type", "application/problem+json"),),
        body=json.dumps(body).encode(),
    )
