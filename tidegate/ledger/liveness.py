"""Workers' liveness records and how busy each worker is.

- ``tg:{route}:alive:<consumer>``: one record per worker process, expiring
  unless refreshed, so a hung or killed worker disappears on its own
  (``tidegate worker --check``).
- ``tg:{route}:busy``: one hash field per worker process,
  ``"<jobs in flight>:<unix ms>"``, written with the record and whenever the
  worker goes from idle to busy or back. The scaler reads the whole hash in
  one call (``busy``) to count busy workers and to mark idle pods cheapest to
  delete before it scales in; a field older than the record's TTL is a
  worker that is gone, and is dropped.
"""

from __future__ import annotations

import time
from typing import Any

from tidegate.keys import RouteKeys
from tidegate.ledger.client import Connection, redis_errors, text

RECORD_TTL_S = 15.0
"""A worker's record lives this long unless refreshed; a busy field this old
is a worker that is gone."""


async def refresh(
    redis: Connection, route: str, consumer: str, record: str, ttl_s: float, in_flight: int = 0
) -> None:
    keys = RouteKeys(route)
    with redis_errors("refreshing the liveness record"):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.alive(consumer), record, px=int(ttl_s * 1000))
            pipe.hset(keys.busy, consumer, f"{in_flight}:{int(time.time() * 1000)}")
            await pipe.execute()


async def clear(redis: Connection, route: str, consumer: str) -> None:
    keys = RouteKeys(route)
    with redis_errors("clearing the liveness record"):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.alive(consumer))
            pipe.hdel(keys.busy, consumer)
            await pipe.execute()


async def busy(redis: Connection, route: str, max_age_s: float = RECORD_TTL_S) -> dict[str, int]:
    """Jobs in flight per worker process that reported within ``max_age_s``;
    older fields (workers gone without a goodbye) are removed."""
    key = RouteKeys(route).busy
    with redis_errors("reading the workers' busy state"):
        raw: Any = await redis.hgetall(key)
    now_ms, out, stale = time.time() * 1000, {}, []
    for field, value in raw.items():
        consumer = text(field)
        count, _, at_ms = text(value).partition(":")
        try:
            fresh = now_ms - int(at_ms) <= max_age_s * 1000
            in_flight = int(count)
        except ValueError:
            fresh, in_flight = False, 0
        if fresh:
            out[consumer] = in_flight
        else:
            stale.append(consumer)
    if stale:
        with redis_errors("dropping stale busy records"):
            await redis.hdel(key, *stale)
    return out


async def first_alive(redis: Connection, route: str, consumer_glob: str) -> str | None:
    """The key of one live record whose consumer matches the glob, or None."""
    pattern = RouteKeys(route).alive(consumer_glob)
    with redis_errors("checking worker liveness"):
        async for key in redis.scan_iter(match=pattern, count=100):
            return text(key)
    return None
