"""The Redis key schema, in one place.

Every key of a route carries the route's name as a Cluster hash tag,
``tg:{ROUTE}:...``, so all of a route's keys live in one slot (the Lua scripts
that touch several of them at once need that) and different routes spread
across shards.

A route with ``partitions: P > 1`` splits its stream (and everything that
belongs to one job: projection, result, idempotency record, event log,
delayed set, dead letters, throttle bucket) over P hash tags, ``ROUTE~N``,
one per partition. Partition p's tag is the first ``ROUTE~N`` (N = 0, 1, ...)
whose Cluster slot falls in the p-th of P equal slices of the 16384 slots, so
on a cluster whose slots are spread evenly over its shards (what
``redis-cli --cluster create`` and managed services do) P partitions land on
min(P, shards) different shards. What is about the route as a whole (the
scaler's view, worker liveness, the throttle-change channel) keeps the plain
``{ROUTE}`` tag.

Job ids are ``TAG.TOKEN``: the token is 144 random bits (unguessable), and
the tag names the route and the partition, so the job API finds a job's keys
without scanning anything, whatever the route's partitions are today.
"""

from __future__ import annotations

import base64
import functools
import itertools
import os
import re
from dataclasses import dataclass, field
from typing import Protocol

from tidegate import idempotency
from tidegate.settings import ROUTE_NAME

GROUP = "workers"
"""The consumer group every worker of a route reads the request stream with."""

COMPENSATORS = "compensators"
"""The consumer group that works off the dead-letter stream (compensation)."""

GATEWAY_PROBE = "tg:gateway:write-probe"
"""Written (and expiring) by a gateway that checks whether Redis takes writes again."""

_TOKEN_BYTES = 18
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


_TAG_SUFFIX = re.compile(r"~(0|[1-9][0-9]{0,5})")

SLOTS = 16384
"""Redis Cluster hash slots."""


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC16 = _crc16_table()


def slot_of(tag: str) -> int:
    """The Cluster slot of a hash tag (CRC16/XMODEM mod 16384, as Redis computes it)."""
    crc = 0
    for byte in tag.encode():
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ byte) & 0xFF]
    return crc % SLOTS


@functools.lru_cache(maxsize=4096)
def partition_tags(route: str, partitions: int = 1) -> tuple[str, ...]:
    """The hash tags of a route's partitions (see the module's docstring)."""
    if partitions == 1:
        return (route,)
    tags: list[str] = []
    candidates = (f"{route}~{n}" for n in itertools.count())
    for p in range(partitions):
        low, high = p * SLOTS // partitions, (p + 1) * SLOTS // partitions
        tags.append(next(t for t in candidates if low <= slot_of(t) < high))
    return tuple(tags)


def new_job_id(tag: str) -> str:
    """A fresh, unguessable job id that names its route and partition (its tag)."""
    # What secrets.token_urlsafe does, without its layers (hot path); 18 bytes
    # encode to 24 characters with no padding.
    return tag + "." + base64.urlsafe_b64encode(os.urandom(_TOKEN_BYTES)).decode()


def id_tag(job_id: str) -> str:
    """The tag part of a job id, unchecked: for ids the ledger made itself
    (``tag_of`` checks one a client sent)."""
    return job_id.partition(".")[0]


def tag_of(job_id: str) -> tuple[str, str] | None:
    """The route and the partition tag a job id names, or None when malformed."""
    tag, sep, token = job_id.partition(".")
    if not sep or len(token) != 24 or not set(token) <= _TOKEN_CHARS:
        return None
    route, tilde, number = tag.partition("~")
    if not ROUTE_NAME.match(route) or (tilde and not _TAG_SUFFIX.fullmatch(tilde + number)):
        return None
    return route, tag


def route_of(job_id: str) -> str | None:
    """The route a job id belongs to, or None when the id is malformed."""
    found = tag_of(job_id)
    return found[0] if found else None


def job_keys(job_id: str) -> RouteKeys | None:
    """The keys of the partition that holds a job, or None when the id is malformed."""
    found = tag_of(job_id)
    return RouteKeys(*found) if found else None


class Partitioned(Protocol):
    """A route's name and partition count (``RouteSettings`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def partitions(self) -> int: ...


@dataclass(frozen=True)
class Layout:
    """A route's name and partition count, where no ``RouteSettings`` is at hand."""

    name: str
    partitions: int = 1


def parts_of(route: str | Partitioned) -> tuple[RouteKeys, ...]:
    """The keys of each partition of a route (a bare name: one partition)."""
    if isinstance(route, str):
        return _parts(route, 1)
    return _parts(route.name, route.partitions)


@functools.lru_cache(maxsize=4096)
def _parts(route: str, partitions: int) -> tuple[RouteKeys, ...]:
    return tuple(RouteKeys(route, tag) for tag in partition_tags(route, partitions))


class PartitionChooser:
    """Which partition a new job goes to.

    A job with an Idempotency-Key goes where the key's hash says, so a repeat
    always meets the first record. Others go round-robin, counted per route
    and tenant: each tenant's jobs spread evenly, so the per-partition buckets
    (throttle, quota, fair share, each at 1/P of the route's rate) fill evenly
    and together admit the route's rate. With one partition it is the route.
    """

    def __init__(self) -> None:
        self._turns: dict[tuple[str, str], itertools.count[int]] = {}

    def tag(self, route: str | Partitioned, tenant: str = "", idempotency_key: str = "") -> str:
        parts = parts_of(route)
        if len(parts) == 1:
            return parts[0].tag
        if idempotency_key:
            index = idempotency.partition(idempotency_key, tenant, len(parts))
        else:
            name = route if isinstance(route, str) else route.name
            turn = self._turns.get((name, tenant))
            if turn is None:
                turn = self._turns[(name, tenant)] = itertools.count()
            index = next(turn) % len(parts)
        return parts[index].tag


@dataclass(frozen=True)
class RouteKeys:
    """All the Redis names of one route, or of one partition of it."""

    route: str
    tag: str = field(default="")
    """The partition's hash tag; empty: the route's own (``{ROUTE}``)."""

    @property
    def prefix(self) -> str:
        return f"tg:{{{self.tag or self.route}}}:"

    @property
    def requests(self) -> str:
        """Stream of job envelopes; the consumer group ``GROUP`` reads it."""
        return self.prefix + "requests"

    @property
    def dead(self) -> str:
        """Dead-letter stream."""
        return self.prefix + "dead"

    @property
    def delayed(self) -> str:
        """Sorted set of retries waiting for their backoff (score: due, unix ms)."""
        return self.prefix + "delayed"

    @property
    def deadlines(self) -> str:
        """Sorted set of unfinished jobs by deadline (unix ms), for the reconciler."""
        return self.prefix + "deadlines"

    @property
    def callbacks(self) -> str:
        """Sorted set of due completion callbacks ("job \\n state" by due time,
        unix ms); a claimed one is pushed past its delivery's lease."""
        return self.prefix + "callbacks"

    @property
    def callback_tries(self) -> str:
        """Hash: per due callback, its delivery attempts and when it first
        fell due ("attempts:unix_ms")."""
        return self.prefix + "callback-tries"

    @property
    def events(self) -> str:
        """The route's append-only job event log."""
        return self.prefix + "events"

    @property
    def done(self) -> str:
        """Pub/sub channel: a job id is published when the job ends."""
        return self.prefix + "done"

    @property
    def scaler(self) -> str:
        """Hash: the scaler's latest view of the route (rates, replicas), with a TTL."""
        return self.prefix + "scaler"

    @property
    def throttle(self) -> str:
        """Hash: the route's capacity throttle (rate, burst, reason, since) and
        its token bucket (tokens, ts_ms); absent while not throttled."""
        return self.prefix + "throttle"

    @property
    def throttle_channel(self) -> str:
        """Pub/sub channel: the throttle was set, changed or lifted."""
        return self.prefix + "throttle-changes"

    @property
    def refused(self) -> str:
        """Counter: requests refused by the throttle or a quota (offered load
        beyond what was admitted, for the scaler)."""
        return self.prefix + "refused"

    @property
    def tenants_active(self) -> str:
        """Sorted set: tenant -> last request (unix ms), for fair shares."""
        return self.prefix + "tenants-active"

    @property
    def tenant_weights(self) -> str:
        """Hash: tenant -> weight, as the gateways last saw it."""
        return self.prefix + "tenant-weights"

    def quota(self, tenant: str) -> str:
        """A tenant's quota bucket on this route (tokens, ts_ms)."""
        return self.prefix + "quota:" + tenant

    def share(self, tenant: str) -> str:
        """A tenant's fair-share bucket while the route is throttled."""
        return self.prefix + "share:" + tenant

    @property
    def arrivals(self) -> str:
        """List: the route's arrival rate per 10 s bucket ("start_s:rate"),
        oldest first, capped; what ``scaler.predict: periodic`` learns from."""
        return self.prefix + "arrivals"

    @property
    def workers(self) -> str:
        """Hash: per live worker process, its jobs in flight and when it said
        so ("in_flight:unix_ms"): liveness (``worker --check``) and the
        scaler's scale-in of idle pods first (``ledger.liveness``)."""
        return self.prefix + "workers"

    def job(self, job_id: str) -> str:
        """Projection hash of one job (a fold of its events)."""
        return self.prefix + "job:" + job_id

    def result(self, job_id: str) -> str:
        """Stored upstream response of one job."""
        return self.prefix + "result:" + job_id

    def idempotency(self, key_digest: str) -> str:
        """Idempotency record (job id + payload digest) for one client key."""
        return self.prefix + "idem:" + key_digest
