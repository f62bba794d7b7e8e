"""The Redis key schema, in one place.

Every key of a route carries the route's name as a Cluster hash tag,
``tg:{ROUTE}:...``, so all of a route's keys live in one slot (the Lua scripts
that touch several of them at once need that) and different routes spread
across shards.

Job ids are ``ROUTE.TOKEN``: the token is 144 random bits (unguessable), and
the prefix lets the job API find a job's keys without scanning anything.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from tidegate.settings import ROUTE_NAME

GROUP = "workers"
"""The consumer group every worker of a route reads the request stream with."""

COMPENSATORS = "compensators"
"""The consumer group that works off the dead-letter stream (compensation)."""

GATEWAY_PROBE = "tg:gateway:write-probe"
"""Written (and expiring) by a gateway that checks whether Redis takes writes again."""

_TOKEN_BYTES = 18
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def new_job_id(route: str) -> str:
    """A fresh, unguessable job id that names its route."""
    # What secrets.token_urlsafe does, without its layers (hot path); 18 bytes
    # encode to 24 characters with no padding.
    return route + "." + base64.urlsafe_b64encode(os.urandom(_TOKEN_BYTES)).decode()


def route_of(job_id: str) -> str | None:
    """The route a job id belongs to, or None when the id is malformed."""
    route, sep, token = job_id.partition(".")
    if not sep or not ROUTE_NAME.match(route) or len(token) != 24:
        return None
    if not set(token) <= _TOKEN_CHARS:
        return None
    return route


@dataclass(frozen=True)
class RouteKeys:
    """All the Redis names of one route."""

    route: str

    @property
    def prefix(self) -> str:
        return f"tg:{{{self.route}}}:"

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

    def alive(self, consumer: str) -> str:
        """Liveness record of one worker process (expires unless refreshed)."""
        return self.prefix + "alive:" + consumer

    def job(self, job_id: str) -> str:
        """Projection hash of one job (a fold of its events)."""
        return self.prefix + "job:" + job_id

    def result(self, job_id: str) -> str:
        """Stored upstream response of one job."""
        return self.prefix + "result:" + job_id

    def idempotency(self, key_digest: str) -> str:
        """Idempotency record (job id + payload digest) for one client key."""
        return self.prefix + "idem:" + key_digest
