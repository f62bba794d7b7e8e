"""Measuring a route's backlog: entries waiting for a worker, and in progress.

Redis 7 reports the consumer group's ``lag`` (entries not yet delivered), but
it can be NULL: after entries were deleted or trimmed in ways that make the
count unknowable. Unknown is never zero here. The fallbacks, in order:

- no stream: nothing was ever admitted, the backlog is 0 (exact);
- no consumer group: no worker has started, every entry waits (XLEN, exact);
- NULL lag: count the entries after the group's last-delivered id, page by
  page, up to ``count_cap`` (beyond it the figure is a lower bound and
  ``exact`` is False).

The age of the oldest waiting entry comes from its stream id (the
millisecond time it was added), one more XRANGE of a single entry, only when
something waits.

A partitioned route is measured partition by partition, side by side (each is
its own slot, maybe its own shard), and added up: counts are sums, the oldest
entry is the oldest of all, and the figure is exact only if every part is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from redis.exceptions import ResponseError

from tidegate.keys import GROUP, Partitioned, RouteKeys, parts_of
from tidegate.ledger.calls import Sample
from tidegate.ledger.client import Connection, redis_errors
from tidegate.ledger.client import text as _text
from tidegate.ledger.runner import Runner


@dataclass(frozen=True)
class Backlog:
    route: str
    waiting: int
    """Entries admitted and not yet delivered to any worker."""
    pending: int
    """Entries delivered to a worker and not yet acknowledged."""
    length: int
    """Entries in the stream (includes acknowledged, not yet trimmed ones)."""
    exact: bool
    """False when ``waiting`` is a lower bound (NULL lag beyond the count cap)."""
    source: str
    """How ``waiting`` was measured: no-stream, no-group, lag, counted."""
    oldest_waiting_ms: int | None = None
    """When the oldest entry not yet delivered was added (unix ms; None: none waits)."""

    def oldest_age_s(self, now_s: float) -> float | None:
        """Age of the oldest waiting entry at ``now_s`` (unix seconds)."""
        if self.oldest_waiting_ms is None:
            return None
        return max(0.0, now_s - self.oldest_waiting_ms / 1000)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _get(info: dict[Any, Any], name: str) -> Any:
    return info.get(name, info.get(name.encode()))


SOURCES = ("counted", "no-group", "lag", "no-stream")
"""How a backlog was measured, least exact first: a sum over partitions names
the least exact of its parts."""


async def measure(
    redis: Connection, route: str | Partitioned, *, count_cap: int = 100_000
) -> Backlog:
    """Measure one route's backlog (two round trips per partition; more only for NULL lag)."""
    parts = parts_of(route)
    if len(parts) == 1:
        return await _measure(redis, parts[0], count_cap)
    found = await asyncio.gather(*(_measure(redis, keys, count_cap) for keys in parts))
    return _sum(parts[0].route, found)


def _sum(route: str, found: Sequence[Backlog]) -> Backlog:
    """A route's backlog over its partitions: sums, the oldest of the oldest,
    exact only if every part is, the least exact source named."""
    if len(found) == 1:
        return found[0]
    oldest = [b.oldest_waiting_ms for b in found if b.oldest_waiting_ms is not None]
    return Backlog(
        route=route,
        waiting=sum(b.waiting for b in found),
        pending=sum(b.pending for b in found),
        length=sum(b.length for b in found),
        exact=all(b.exact for b in found),
        source=min((b.source for b in found), key=SOURCES.index),
        oldest_waiting_ms=min(oldest) if oldest else None,
    )


async def _measure(redis: Connection, keys: RouteKeys, count_cap: int) -> Backlog:
    route = keys.route
    with redis_errors("measuring the backlog"):
        length = int(await redis.xlen(keys.requests))
        if length == 0 and not await redis.exists(keys.requests):
            return Backlog(route, 0, 0, 0, True, "no-stream")
        try:
            groups = await redis.xinfo_groups(keys.requests)
        except ResponseError as e:  # the stream vanished between the two calls
            if "no such key" not in str(e).lower():
                raise
            return Backlog(route, 0, 0, 0, True, "no-stream")
        group = next((g for g in groups if _text(_get(g, "name")) == GROUP), None)
        if group is None:
            oldest = await _first_after(redis, keys.requests, "-") if length else None
            return Backlog(route, length, 0, length, True, "no-group", oldest)
        pending = int(_get(group, "pending"))
        lag = _get(group, "lag")
        last = _text(_get(group, "last-delivered-id"))
        if lag is not None:
            waiting, exact, source = int(lag), True, "lag"
        else:
            waiting, exact = await _count_after(redis, keys.requests, last, count_cap)
            source = "counted"
        oldest = await _first_after(redis, keys.requests, "(" + last) if waiting else None
        return Backlog(route, waiting, pending, length, exact, source, oldest)


async def _first_after(redis: Connection, stream: str, start: str) -> int | None:
    page: Any = await redis.xrange(stream, start, "+", count=1)
    return int(_text(page[0][0]).split("-")[0]) if page else None


async def _count_after(redis: Connection, stream: str, last_id: str, cap: int) -> tuple[int, bool]:
    count, start = 0, "(" + last_id
    while count < cap:
        page: Any = await redis.xrange(stream, start, "+", count=min(1000, cap - count))
        if not page:
            return count, True
        count += len(page)
        start = "(" + _text(page[-1][0])
    return count, False


@dataclass(frozen=True)
class Counters:
    """Counters that only grow, for rates: what a route was offered."""

    added_total: int
    """The stream's ``entries-added`` (Redis >= 7), which trimming does not lower."""
    refused_total: int
    """Requests the gateways refused (throttle, quotas)."""


async def counters(redis: Connection, route: str | Partitioned) -> Counters:
    """The route's counters, summed over its partitions."""
    found = await asyncio.gather(*(_counters(redis, keys) for keys in parts_of(route)))
    return Counters(sum(c.added_total for c in found), sum(c.refused_total for c in found))


async def _counters(redis: Connection, keys: RouteKeys) -> Counters:
    with redis_errors("reading a route's counters"):
        try:
            info: Any = await redis.xinfo_stream(keys.requests)
            added = int(_get(info, "entries-added") or 0)
        except ResponseError as e:  # no stream yet: nothing was ever admitted
            if "no such key" not in str(e).lower():
                raise
            added = 0
        refused = int(await redis.get(keys.refused) or 0)
    return Counters(added, refused)


async def sampled(
    redis: Connection,
    route: str | Partitioned,
    *,
    count_cap: int = 100_000,
    runner: Runner | None = None,
) -> tuple[Backlog, Counters]:
    """The backlog and the counters together, one script call per partition
    (``sample.lua``): what the scaler reads every tick. Same answers as
    ``measure`` and ``counters``; a group whose lag Redis does not know is
    counted here, as ``measure`` does."""
    parts = parts_of(route)
    run = runner or Runner(redis)
    if len(parts) == 1:  # no task for the common case
        found = [await _sampled(redis, run, parts[0], count_cap)]
    else:
        found = await asyncio.gather(*(_sampled(redis, run, keys, count_cap) for keys in parts))
    counted = Counters(sum(c.added_total for _, c in found), sum(c.refused_total for _, c in found))
    return _sum(parts[0].route, [b for b, _ in found]), counted


async def _sampled(
    redis: Connection, runner: Runner, keys: RouteKeys, count_cap: int
) -> tuple[Backlog, Counters]:
    with redis_errors("sampling a route"):
        got = await runner.run(Sample(route=keys))
    counters_ = Counters(got.added, got.refused)
    route = keys.route
    if not got.exists:
        return Backlog(route, 0, 0, 0, True, "no-stream"), counters_
    if not got.found:
        return Backlog(route, got.length, 0, got.length, True, "no-group", got.oldest_ms), counters_
    if got.lag is not None:
        return (
            Backlog(route, got.lag, got.pending, got.length, True, "lag", got.oldest_ms),
            counters_,
        )
    measured = await _measure(redis, keys, count_cap)  # Redis does not know the lag: count
    return measured, counters_
