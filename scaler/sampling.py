"""Sampling a route for the policy: counters and gauges from Redis.

- ``added_total``: the stream's ``entries-added`` counter (Redis >= 7), which
  trimming does not lower;
- ``waiting`` and ``pending``: from ``tidegate.ledger.backlog`` (NULL lag, missing
  group and missing stream handled there: unknown is never zero);
- ``completed_total``: every entry ever added is waiting, pending or done, so
  ``added - waiting - pending``;
- ``oldest_age_s``: how long the oldest waiting entry has waited (wall clock
  against the time in its stream id);
- ``refused_total``: requests the gateways refused (throttle, quotas), so
  the offered load is known even while a throttle hides it.

Replica counts come from the actuator (the Deployment's scale, or the local
processes) and are passed in. A partitioned route is sampled over all its
partitions, added up. A failed measurement gives ``waiting=None``,
which the policy answers by holding the current replicas.
"""

from __future__ import annotations

import time

from scaler.policy import Sample
from tidegate.errors import RedisUnavailable
from tidegate.keys import Partitioned
from tidegate.ledger.runner import Runner
from tidegate.ledger.store import Store


async def sample_route(
    store: Store,
    route: str | Partitioned,
    *,
    now_s: float,
    ready_replicas: int,
    current_replicas: int,
    busy_replicas: int | None = None,
    runner: Runner | None = None,
) -> Sample:
    try:
        measured, found = await store.sample(route, runner=runner)
    except RedisUnavailable:
        return Sample(now_s, None, 0, 0, 0, ready_replicas, current_replicas)
    added, refused = found.added_total, found.refused_total
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
        busy_replicas=busy_replicas,
    )
