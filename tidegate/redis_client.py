"""Connecting to Redis, and translating its failures at this boundary.

redis-py's own retry loop is switched off: each part decides itself what to do
when Redis is away (the gateway answers 503 at once, workers back off and
resume), and a hidden retry with backoff would turn "fast 503" into a hang.
Connection errors, timeouts and a server still loading its data all become
``RedisUnavailable``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

from tidegate.errors import RedisUnavailable
from tidegate.settings import RedisSettings

UNAVAILABLE = (ConnectionError, TimeoutError, BusyLoadingError, OSError)


def connect(settings: RedisSettings, *, extra_timeout_s: float = 0.0) -> Redis:
    """A client with a bounded pool and no hidden retries.

    ``extra_timeout_s`` lengthens the socket timeout for clients that issue
    blocking reads (XREADGROUP BLOCK), so a quiet stream is not a timeout.
    """
    # A blocking pool: past max_connections a caller waits for a free
    # connection instead of getting a ConnectionError that would read as
    # "Redis is down".
    pool = BlockingConnectionPool.from_url(
        settings.url,
        socket_connect_timeout=settings.connect_timeout_s,
        socket_timeout=settings.socket_timeout_s + extra_timeout_s,
        max_connections=settings.max_connections,
        timeout=settings.socket_timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis(connection_pool=pool)


def text(value: bytes | str) -> str:
    """A reply value as str (clients here do not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value


@contextmanager
def unavailable_as_error(what: str) -> Iterator[None]:
    """Turn redis-py's connection failures into RedisUnavailable."""
    try:
        yield
    except UNAVAILABLE as e:
        raise RedisUnavailable(f"Redis unreachable while {what}: {e}") from e
