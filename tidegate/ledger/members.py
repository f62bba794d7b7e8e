"""Who is in a group of processes right now: one record per member, in Redis.

The scaler replicas that share the routes' shards (``scaler.shards``) each
take about their fair share, the shards divided by the replicas alive; a
replica learns how many there are here. ``tg:members:GROUP`` is a hash, one
field per member (its identity), the unix ms of its last beat. Members beat
every few seconds; a field older than ``max_age_s`` is a member that is gone
(killed, partitioned away) and is removed by whoever reads it; a member that
stops cleanly removes its own.
"""

from __future__ import annotations

import time
from typing import Any

from tidegate.ledger.client import Connection, redis_errors, text


def members_key(group: str) -> str:
    return f"tg:members:{group}"


async def beat(
    redis: Connection, group: str, identity: str, max_age_s: float, *, now_s: float | None = None
) -> list[str]:
    """Record that ``identity`` is alive; the members alive, itself included,
    sorted. Raises RedisUnavailable."""
    key = members_key(group)
    now_ms = int((time.time() if now_s is None else now_s) * 1000)
    with redis_errors("beating as a member"):
        await redis.hset(key, identity, str(now_ms))
        raw: Any = await redis.hgetall(key)
        alive: list[str] = []
        gone: list[str] = []
        for field, value in raw.items():
            member = text(field)
            try:
                fresh = now_ms - int(text(value)) <= max_age_s * 1000
            except ValueError:
                fresh = False
            (alive if fresh else gone).append(member)
        if gone:
            await redis.hdel(key, *gone)
    return sorted(alive)


async def leave(redis: Connection, group: str, identity: str) -> None:
    with redis_errors("leaving the members"):
        await redis.hdel(members_key(group), identity)
