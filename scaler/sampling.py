"""Sampling a route for the policy: counters and gauges from Redis.

- ``added_total``: the stream's ``entries-added`` counter (Redis >= 7), which
  trimming does not lower;
- ``waiting`` and ``pending``: from ``tidegate.backlog`` (NULL lag, missing
  group and missing stream handled there: unknown is never zero);
- ``completed_total``: every entry ever added is waiting, pending or done, so
  ``added - waiting - pending``;
- ``oldest_age_s``: how long the oldest waiting entry has waited (wall clock
  against the time in its stream id);
- ``refused_total``: requests the gateways refused (throttle, quotas), so
  the offered load is known even while a throttle hides it.

Replica counts come from the actuator (the Deployment's scale, or the local
processes) and are passed in. A failed measurement gives ``waiting=None``,
which the policy answers by holding the current replicas.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from scaler.policy import Sample
from tidegate import backlog
from tidegate.errors import RedisUnavailable
from tidegate.keys import RouteKeys
from tidegate.redis_client import unavailable_as_error


async def sample_route(
    redis: Redis, route: str, *, now_s: float, ready_replicas: int, current_replicas: int
) -> Sample:
    try:
        measured = await backlog.measure(redis, route)
        with unavailable_as_error("sampling a route"):
            try:
                info: Any = await redis.xinfo_stream(RouteKeys(route).requests)
                added = int(info.get("entries-added", info.get(b"entries-added", 0)))
            except ResponseError:  # no stream yet: nothing was ever admitted
                added = 0
            refused = int(await redis.get(RouteKeys(route).refused) or 0)
    except RedisUnavailable:
        return Sample(now_s, None, 0, 0, 0, ready_replicas, current_replicas)
    completed = max(0, added - measured.waiting - measured.pending)
    return Sample(
        t_s=now_s,
        waiting=measured.waiting,
        pending=measured.pending,
        added_total=added,
        completed_total=completed,
        ready_replicas=ready_replicas,
        current_replicas=current_replicas,
        oldest_age_s=measured.oldest_age_s(time.time()),
        refused_total=refused,
    )
