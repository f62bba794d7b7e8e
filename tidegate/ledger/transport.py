"""How commands travel for each Redis topology: one class per topology.

The rest of the ledger asks a client's transport, and never what kind of
client it holds:

- ``OneServer``: a client of one server: standalone, or the master Sentinel
  names (its pool asks the sentinels). Script calls go over the client's
  shared ``Link`` when the connection is plain TCP, else through redis-py's
  pool (TLS, a Unix socket, a credential provider, Sentinel); a WAIT holds
  its connection until replicas answer, so it never goes on the shared link.
  Blocking reads and subscriptions take a link of their own where links are
  possible.
- ``Cluster``: a Redis Cluster. Scripts are loaded on every primary, script
  calls are grouped by the node that serves their slot
  (``cluster_calls``), the slot map is read once before commands go out side
  by side, and there are no links (redis-py keeps a connection per node).

``transport(client)`` picks the class once per client and keeps it there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from tidegate.errors import RedisUnavailable
from tidegate.ledger.calls import ScriptCall
from tidegate.ledger.client import UNAVAILABLE, Connection, LinkedRedis, redis_errors
from tidegate.ledger.cluster_calls import _cluster_pipeline
from tidegate.ledger.exchange import _exchange
from tidegate.ledger.link import Link
from tidegate.ledger.script_registry import _packed

__all__ = ["Cluster", "OneServer", "Transport", "ready", "transport"]


class Transport(ABC):
    @abstractmethod
    async def load(self, source: str) -> None:
        """Put one script into the server's cache (every primary's)."""

    @abstractmethod
    async def pipeline(
        self, calls: Sequence[ScriptCall[Any]], wait: tuple[int, int] | None
    ) -> list[Any]:
        """The calls' raw replies in order (errors as values), WAIT's last."""

    async def ready(self) -> None:  # noqa: B027 (most topologies need nothing)
        """Whatever must be known before commands go out side by side."""

    def own_link(self) -> Link | None:
        """A connection for one caller alone (a blocking read, a
        subscription), or None: that caller uses redis-py's own."""
        return None


class OneServer(Transport):
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._linked = redis if isinstance(redis, LinkedRedis) else None

    async def load(self, source: str) -> None:
        await self._redis.script_load(source)

    async def pipeline(
        self, calls: Sequence[ScriptCall[Any]], wait: tuple[int, int] | None
    ) -> list[Any]:
        link = self._linked.link() if self._linked is not None and wait is None else None
        if link is not None:
            return await link.exchange(_packed(calls, None), len(calls))
        pool = self._redis.connection_pool
        try:
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        except UNAVAILABLE as e:
            raise RedisUnavailable(f"Redis unreachable (nothing was sent): {e}") from e
        try:
            return await _exchange(connection, calls, wait)
        finally:
            await pool.release(connection)

    def own_link(self) -> Link | None:
        return self._linked.own_link() if self._linked is not None else None


class Cluster(Transport):
    def __init__(self, redis: RedisCluster) -> None:
        self._redis = redis

    async def load(self, source: str) -> None:
        await self._redis.execute_command("SCRIPT LOAD", source, target_nodes=self._redis.PRIMARIES)

    async def pipeline(
        self, calls: Sequence[ScriptCall[Any]], wait: tuple[int, int] | None
    ) -> list[Any]:
        return await _cluster_pipeline(self._redis, calls, wait)

    async def ready(self) -> None:
        await self._redis.initialize()


def transport(redis: Connection) -> Transport:
    """The client's transport, made on first use and kept on the client."""
    found: Transport | None = getattr(redis, "_tidegate_transport", None)
    if found is None:
        found = Cluster(redis) if isinstance(redis, RedisCluster) else OneServer(redis)
        redis._tidegate_transport = found  # type: ignore[union-attr]
    return found


async def ready(redis: Connection) -> None:
    """Read a cluster's slot map now (once), before commands go out side by
    side: the client otherwise learns it on the first command, and many
    first commands at once race to. A no-op on one server."""
    with redis_errors("reading the cluster's slot map"):
        await transport(redis).ready()
