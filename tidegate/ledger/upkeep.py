"""Upkeep: what keeps a route's data true and bounded when no request asks.

Retries whose backoff has passed are promoted into the stream; jobs past
their deadline are reconciled (expired or requeued); streams are trimmed of
what no one needs; and a route's projections can be rebuilt from its event
log (``replay``). Workers run the first three on timers; replay is a tool.
A partitioned route is kept partition by partition (each is its own slot):
``promote`` takes the partition a worker's read loop serves, the others go
over every partition and add up.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidegate.keys import COMPENSATORS, GROUP, RouteKeys, parts_of
from tidegate.ledger.base import LedgerBase
from tidegate.ledger.calls import Overdue, Promote, Promoted, Replay, unix_ms
from tidegate.ledger.client import redis_errors, text
from tidegate.ledger.scripts import run_calls

OVERDUE_BATCH = 100


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


class Upkeep(LedgerBase):
    async def promote(
        self, route_name: str, *, partition: int = 0, now_s: float | None = None, most: int = 100
    ) -> Promoted:
        """Move retries whose backoff has passed into a partition's request stream."""
        keys = parts_of(self.routes[route_name])[partition]
        with redis_errors("promoting due retries"):
            return await self.runner.run(Promote(route=keys, now_ms=unix_ms(now_s), most=most))

    async def reconcile(self, route_name: str, *, now_s: float | None = None) -> Counter[str]:
        """Settle jobs past their deadline with no end; counts per action.

        Reads the deadline index (no scan), then settles each overdue job in
        its own atomic call, per the route's ``worker.on_deadline``: ``expired``,
        or ``requeued`` (a new deadline; back in the stream when its entry was
        lost) up to ``worker.max_requeues`` times. Many reconcilers may run at
        once: each change is an append the job's state must allow.
        """
        route = self.routes[route_name]
        actions: Counter[str] = Counter()
        for keys in parts_of(route):
            actions += await self._reconcile(keys, now_s)
        return actions

    async def _reconcile(self, keys: RouteKeys, now_s: float | None) -> Counter[str]:
        route = self.routes[keys.route]
        max_requeues = route.worker.max_requeues if route.worker.on_deadline == "requeue" else 0
        actions: Counter[str] = Counter()
        with redis_errors("reconciling overdue jobs"):
            overdue: Any = await self._redis.zrangebyscore(
                keys.deadlines, "-inf", unix_ms(now_s), start=0, num=OVERDUE_BATCH
            )
            for raw in overdue:
                settled = await self.runner.run(
                    Overdue(
                        route=keys,
                        job_id=text(raw),
                        ttl_ms=route.result_ttl_s * 1000,
                        done_channel=keys.done,
                        max_requeues=max_requeues,
                        deadline_s=route.deadline_s,
                    )
                )
                if settled.ok:
                    actions[settled.state] += 1
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
        route = self.routes[route_name]
        now_ms = unix_ms(now_s)
        events_floor = now_ms - int((route.result_ttl_s + route.deadline_s) * 1000)
        dead_floor = now_ms - int(route.worker.dead_letter_retention_s * 1000)
        requests = events = dead = 0
        with redis_errors("trimming streams"):
            for keys in parts_of(route):
                requests += await self._trim_consumed(keys.requests, GROUP, None)
                events += int(
                    await self._redis.xtrim(
                        keys.events, minid=f"{events_floor}-0", approximate=False
                    )
                )
                dead += await self._trim_consumed(keys.dead, COMPENSATORS, dead_floor)
        return TrimReport(requests=requests, events=events, dead=dead)

    async def _trim_consumed(self, stream: str, group: str, floor_ms: int | None) -> int:
        """Trim entries the group is done with (and, with a floor, older than it)."""
        if not await self._redis.exists(stream):
            return 0
        groups: Any = await self._redis.xinfo_groups(stream)
        info = next((g for g in groups if text(g["name"]) == group), None)
        if info is None:
            return 0
        pending: Any = await self._redis.xpending(stream, group)
        if pending["pending"]:
            threshold = text(pending["min"])
        else:
            ms, _, seq = text(info["last-delivered-id"]).partition("-")
            threshold = f"{ms}-{int(seq) + 1}"
        if floor_ms is not None and _stream_id(threshold) > (floor_ms, 0):
            threshold = f"{floor_ms}-0"
        return int(await self._redis.xtrim(stream, minid=threshold, approximate=False))

    async def event_count(self, route_name: str) -> int:
        """Events in a route's logs (every partition's): what a replay reads."""
        with redis_errors("counting events"):
            lengths = [await self._redis.xlen(k.events) for k in parts_of(self.routes[route_name])]
        return sum(int(n) for n in lengths)

    async def replay(
        self, route_name: str, *, page: int = 500, progress: Callable[[int], None] | None = None
    ) -> ReplayReport:
        """Rebuild every projection of a route from its event streams, a page
        of events per round trip; ``progress`` hears the events replayed so
        far after each page."""
        reports: list[ReplayReport] = []
        for keys in parts_of(self.routes[route_name]):
            before = sum(r.events for r in reports)
            seen = functools.partial(_offset, progress, before) if progress else None
            reports.append(await self._replay(keys, page, seen))
        return ReplayReport(
            events=sum(r.events for r in reports),
            jobs=sum(r.jobs for r in reports),
            refused=sum(r.refused for r in reports),
        )

    async def _replay(
        self, keys: RouteKeys, page: int, progress: Callable[[int], None] | None
    ) -> ReplayReport:
        ttl_ms = self.routes[keys.route].result_ttl_s * 1000
        start, events, refused = "-", 0, 0
        jobs: set[str] = set()
        while True:
            with redis_errors("reading the event log"):
                batch: Any = await self._redis.xrange(keys.events, start, "+", count=page)
            if not batch:
                break
            calls = []
            for event_id, fields in batch:
                job_id = text(fields[b"job"])
                jobs.add(job_id)
                flat = tuple(part for pair in fields.items() for part in pair)
                calls.append(
                    Replay(
                        route=keys,
                        event_id=text(event_id),
                        ttl_ms=ttl_ms,
                        fields=flat,
                        job_id=job_id,
                    )
                )
            with redis_errors("replaying events"):
                applied, _ = await run_calls(self._redis, calls)
            for value in applied:
                if isinstance(value, Exception):
                    raise value
                events += 1
                refused += not value
            if progress:
                progress(events)
            start = "(" + text(batch[-1][0])
        return ReplayReport(events=events, jobs=len(jobs), refused=refused)


def _offset(progress: Callable[[int], None], before: int, done: int) -> None:
    """A partition's progress as the route's: the events of earlier partitions first."""
    progress(before + done)
