"""Connecting to Redis, and translating its failures at this boundary.

redis-py's own retry loop is switched off: each part decides itself what to do
when Redis is away (the gateway answers 503 at once, workers back off and
resume), and a hidden retry with backoff would turn "fast 503" into a hang.
The one exception, without backoff: a read whose pooled connection turns out
to have been closed under it (Redis restarted meanwhile) is sent once more
(``read_again_if_closed``).
Connection errors, timeouts and a server still loading its data all become
``RedisUnavailable``; error replies become the tidegate error that says what
a caller should do (``translate_reply``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection as TcpConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from tidegate.errors import (
    GroupMissing,
    OutcomeUnknown,
    RedisCommandError,
    RedisFull,
    RedisUnavailable,
    TidegateError,
)
from tidegate.ledger.calls import text
from tidegate.ledger.link import Link, LinkOptions
from tidegate.settings import RedisSettings, parse_listen

__all__ = [
    "UNAVAILABLE",
    "Connection",
    "connect",
    "read_again_if_closed",
    "read_pipeline_again_if_closed",
    "redis_errors",
    "text",
    "translate_reply",
]

T = TypeVar("T")

UNAVAILABLE = (ConnectionError, TimeoutError, BusyLoadingError, OSError, RedisClusterException)
"""Failures that mean Redis is away or not ready (a cluster whose slot map
cannot be read, or that has no node for a slot, included)."""

Connection = Redis | RedisCluster
"""A connected client, as the parts hold it: opaque to them (they never import
redis-py); only this package sends commands on it. A ``RedisCluster`` in
cluster mode; in sentinel mode a ``Redis`` whose pool asks the sentinels for
the master."""


def connect(settings: RedisSettings, *, extra_timeout_s: float = 0.0) -> Connection:
    """A client with bounded pools and no hidden retries, for the configured mode.

    ``extra_timeout_s`` lengthens the socket timeout for clients that issue
    blocking reads (XREADGROUP BLOCK), so a quiet stream is not a timeout.
    """
    timeouts = {
        "socket_connect_timeout": settings.connect_timeout_s,
        "socket_timeout": settings.socket_timeout_s + extra_timeout_s,
    }
    if settings.mode == "cluster":
        # One pool per node; a command follows MOVED/ASK and a failover
        # (the slot map is read again), but is not retried on a lost node.
        return RedisCluster.from_url(
            settings.url,
            **timeouts,
            max_connections=settings.max_connections,
            retry=Retry(NoBackoff(), 0),
        )
    if settings.mode == "sentinel":
        options: dict[str, Any] = parse_url(settings.url)  # type: ignore[no-untyped-call]
        for name in ("host", "port", "path"):
            options.pop(name, None)
        sentinels = [parse_listen(item) for item in settings.sentinels]
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            sentinels,
            sentinel_kwargs={**timeouts, "retry": Retry(NoBackoff(), 0)},
            **options,
            **timeouts,
            retry=Retry(NoBackoff(), 0),
            max_connections=settings.max_connections,
        )
        master: Redis = sentinel.master_for(settings.sentinel_master)
        return master
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
    return LinkedRedis(connection_pool=pool)


class LinkedRedis(Redis):
    """A client of one server whose script calls share one ``Link``
    (``link.py``); its other commands use the pool as usual."""

    def __init__(self, *, connection_pool: BlockingConnectionPool) -> None:
        super().__init__(connection_pool=connection_pool)
        self._options = _link_options(connection_pool)
        self._link: Link | None = None
        self._own: list[Link] = []

    def link(self) -> Link | None:
        """This event loop's shared link; None when the connection needs
        redis-py's own (TLS, a Unix socket, a credential provider)."""
        if self._options is None:
            return None
        link = self._link
        if link is None or link.loop is not asyncio.get_running_loop():
            link = self._link = Link(self._options)
        return link

    def own_link(self) -> Link | None:
        """A link for one caller alone, for commands that hold their
        connection (a blocking read); closed with the client."""
        if self._options is None:
            return None
        link = Link(self._options)
        self._own = [*(o for o in self._own if not o.closed), link]
        return link

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        for link in (self._link, *self._own):
            if link is not None:
                link.close()
        self._link, self._own = None, []
        await super().aclose(close_connection_pool)


def _link_options(pool: BlockingConnectionPool) -> LinkOptions | None:
    kwargs = pool.connection_kwargs
    if pool.connection_class is not TcpConnection or kwargs.get("credential_provider"):
        return None
    return LinkOptions(
        host=kwargs.get("host", "localhost"),
        port=int(kwargs.get("port", 6379)),
        db=int(kwargs.get("db", 0) or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        client_name=kwargs.get("client_name"),
        connect_timeout_s=kwargs.get("socket_connect_timeout"),
        timeout_s=kwargs.get("socket_timeout"),
    )


# Error replies that mean "not now, nothing was done": a replica that is not
# (yet) a primary, a primary without its replicas, a cluster reconfiguring, a
# server loading its data set. redis-py turns these codes into classes (and
# drops the code from the message), all but NOREPLICAS.
_NOT_NOW = (ReadOnlyError, MasterDownError, BusyLoadingError, ClusterDownError, TryAgainError)


def translate_reply(error: ResponseError, what: str) -> TidegateError:
    """The tidegate error for an error reply of Redis."""
    message = str(error)
    if isinstance(error, OutOfMemoryError):
        return RedisFull(
            f"Redis refuses writes while {what}: out of memory (maxmemory reached). "
            "Raise maxmemory, shorten result_ttl_s, or add workers to drain the backlog"
        )
    if "NOGROUP" in message or message.startswith("UNBLOCKED"):
        return GroupMissing(f"consumer group or stream gone while {what}: {message}")
    if isinstance(error, _NOT_NOW) or message.startswith("NOREPLICAS"):
        return RedisUnavailable(f"Redis cannot take writes right now while {what}: {message}")
    return RedisCommandError(f"Redis answered an error while {what}: {message}")


def _closed_under_write(error: BaseException) -> bool:
    """redis-py's asyncio connection writing to a transport that was closed
    meanwhile (a peer reset, a node killed) leaks the transport's internals
    as an AttributeError or TypeError about None instead of a connection
    error (redis-py issues 3546 and 4287). Recognised by where it was raised:
    redis-py's connection module or asyncio's transports and streams."""
    if not isinstance(error, AttributeError | TypeError) or "NoneType" not in str(error):
        return False
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename if tb is not None else ""
    return where.endswith(("redis/asyncio/connection.py", "selector_events.py", "streams.py"))


class redis_errors:
    """Translate redis-py's failures at this boundary.

    Connection failures become RedisUnavailable (OutcomeUnknown when the
    command timed out after it was sent), error replies ``translate_reply``.
    A class rather than a ``@contextmanager`` generator: it wraps every Redis
    call, and entering and leaving a generator costs several times more.
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is None:
            return
        what = self.what
        if isinstance(error, TimeoutError):
            raise OutcomeUnknown(f"Redis did not answer in time while {what}: {error}") from error
        if isinstance(error, UNAVAILABLE):
            raise RedisUnavailable(f"Redis unreachable while {what}: {error}") from error
        if isinstance(error, ResponseError):
            raise translate_reply(error, what) from error
        if isinstance(error, AttributeError | TypeError) and _closed_under_write(error):
            raise RedisUnavailable(f"Redis connection lost while {what}: {error}") from error


async def read_again_if_closed(what: str, read: Callable[[], Awaitable[T]]) -> T:
    """A read, its failures translated as ``redis_errors`` does, sent once
    more when the connection it went out on turned out closed (redis-py's
    ConnectionError; never after a timeout). A pooled connection left idle
    across a Redis restart or failover fails its first command, and the pool
    reconnects it for the next: without this, the first read on each such
    connection answers "Redis unreachable" although Redis is back. Only for
    reads, which may run twice; a write whose connection closed may have
    been applied (``OutcomeUnknown``)."""
    try:
        with redis_errors(what):
            return await read()
    except RedisUnavailable as e:
        if not isinstance(e.__cause__, ConnectionError):
            raise
    with redis_errors(what):
        return await read()


async def read_pipeline_again_if_closed(
    redis: Connection, what: str, commands: Callable[[Any], None]
) -> list[Any]:
    """One round trip of the reads ``commands`` queues on a pipeline, as
    ``read_again_if_closed`` (queued again if sent again: a pipeline empties
    when it runs)."""

    async def run() -> list[Any]:
        pipe = redis.pipeline(transaction=False)
        commands(pipe)
        return list(await pipe.execute())

    return await read_again_if_closed(what, run)
