"""Is Redis there, and does it take writes? For readiness, without a probe per request."""

from __future__ import annotations

from tidegate.keys import GATEWAY_PROBE
from tidegate.ledger.client import Connection, read_again_if_closed, redis_errors
from tidegate.ledger.scripts import load_all


async def ping(redis: Connection, *, load_scripts: bool = False) -> None:
    """RedisUnavailable unless Redis answers; ``load_scripts`` also (re)loads the
    Lua scripts (after a restart the script cache is empty)."""

    async def check() -> None:
        await redis.ping()
        if load_scripts:
            await load_all(redis)

    # Sent again on a connection that sat idle through a restart: Redis is
    # back, and readiness should say so now, not at the next check.
    await read_again_if_closed("pinging Redis", check)


async def probe_write(redis: Connection) -> None:
    """A small write that expires; RedisFull while Redis refuses writes."""
    with redis_errors("probing for writes"):
        await redis.set(GATEWAY_PROBE, "1", px=5000)
