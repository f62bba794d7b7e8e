"""Is Redis there, and does it take writes? For readiness, without a probe per request."""

from __future__ import annotations

from tidegate.keys import GATEWAY_PROBE
from tidegate.ledger.client import Connection, redis_errors
from tidegate.ledger.scripts import load_all


async def ping(redis: Connection, *, load_scripts: bool = False) -> None:
    """RedisUnavailable unless Redis answers; ``load_scripts`` also (re)loads the
    Lua scripts (after a restart the script cache is empty)."""
    with redis_errors("pinging Redis"):
        await redis.ping()
        if load_scripts:
            await load_all(redis)


async def probe_write(redis: Connection) -> None:
    """A small write that expires; RedisFull while Redis refuses writes."""
    with redis_errors("probing for writes"):
        await redis.set(GATEWAY_PROBE, "1", px=5000)
