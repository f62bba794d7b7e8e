"""Workers' liveness records: ``tg:{route}:alive:<consumer>``, each expiring
unless refreshed, so a hung or killed worker disappears on its own."""

from __future__ import annotations

from tidegate.keys import RouteKeys
from tidegate.ledger.client import Connection, redis_errors, text


async def refresh(redis: Connection, route: str, consumer: str, record: str, ttl_s: float) -> None:
    with redis_errors("refreshing the liveness record"):
        await redis.set(RouteKeys(route).alive(consumer), record, px=int(ttl_s * 1000))


async def clear(redis: Connection, route: str, consumer: str) -> None:
    with redis_errors("clearing the liveness record"):
        await redis.delete(RouteKeys(route).alive(consumer))


async def first_alive(redis: Connection, route: str, consumer_glob: str) -> str | None:
    """The key of one live record whose consumer matches the glob, or None."""
    pattern = RouteKeys(route).alive(consumer_glob)
    with redis_errors("checking worker liveness"):
        async for key in redis.scan_iter(match=pattern, count=100):
            return text(key)
    return None
