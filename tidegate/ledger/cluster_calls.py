"""Script calls on a Redis Cluster: one pipeline per node, MOVED followed.

Each call goes to the primary of its keys' slot (a route's keys share one
hash tag), the calls for one node in one exchange (``tidegate.ledger.exchange``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    MaxConnectionsError,
    MovedError,
    RedisClusterException,
    SlotNotCoveredError,
)

from tidegate.errors import RedisUnavailable
from tidegate.ledger.calls import ScriptCall
from tidegate.ledger.client import UNAVAILABLE
from tidegate.ledger.exchange import _exchange, acknowledged

REDIRECTS = 3
"""How often a call follows MOVED before it fails as unavailable."""


async def _cluster_pipeline(
    cluster: RedisCluster, calls: Sequence[ScriptCall[Any]], wait: tuple[int, int] | None
) -> list[Any]:
    """One pipeline per node: a call goes to the primary of its keys' slot.

    A MOVED reply (the slot moved: a failover, a resharding) did nothing; the
    slot map is updated and the call sent again. A node that cannot be
    reached fails its calls alone (``RedisUnavailable`` or ``OutcomeUnknown``
    as values) and the slot map is read again for the next calls. ``wait``
    goes to every node written to; the fewest acknowledgements count.
    """
    try:
        await cluster.initialize()  # reads the slot map once; later calls return at once
    except (*UNAVAILABLE, RedisClusterException) as e:
        raise RedisUnavailable(f"Redis Cluster unreachable (nothing was sent): {e}") from e
    results: list[Any] = [None] * len(calls)
    acked: int | None = None
    pending = list(range(len(calls)))
    for _ in range(REDIRECTS):
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        for i in pending:
            try:
                node = cluster.get_node_from_key(calls[i].keys()[0])
            except SlotNotCoveredError:
                node = None
            if node is None:  # the slot has no primary right now
                results[i] = RedisUnavailable("no node serves this route's slot right now")
                cluster._initialize = True  # read the slot map again before the next calls
                continue
            groups.setdefault(node.name, (node, []))[1].append(i)
        answers = await asyncio.gather(
            *(_on_node(node, [calls[i] for i in idx], wait) for node, idx in groups.values()),
            return_exceptions=True,
        )
        moved: list[int] = []
        for (node, idx), answer in zip(groups.values(), answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, RedisUnavailable):
                    raise answer
                for i in idx:
                    results[i] = answer
                await _node_failed(cluster, node)
                continue
            if wait:
                count = acknowledged(answer.pop())
                acked = count if acked is None else min(acked, count)
            for i, value in zip(idx, answer, strict=True):
                if isinstance(value, MovedError | AskError):
                    await cluster.nodes_manager.move_slot(value)
                    moved.append(i)
                else:
                    results[i] = value
        if not moved:
            break
        pending = moved
    else:
        for i in pending:
            results[i] = RedisUnavailable("the slot kept moving (the cluster is resharding)")
    if wait:
        results.append(acked or 0)
    return results


async def _on_node(
    node: ClusterNode, calls: Sequence[ScriptCall[Any]], wait: tuple[int, int] | None
) -> list[Any]:
    """The calls on one connection of ``node``, used the way the node's own
    commands use it (reopened first when it was marked for it)."""
    try:
        connection = node.acquire_connection()
    except MaxConnectionsError as e:
        raise RedisUnavailable(f"no free connection to {node.name}: {e}") from e
    try:
        try:
            await node.disconnect_if_needed(connection)
            await connection.connect()  # type: ignore[no-untyped-call]
        except UNAVAILABLE as e:
            raise RedisUnavailable(f"{node.name} unreachable (nothing was sent): {e}") from e
        return await _exchange(connection, calls, wait)
    finally:
        try:
            await node.disconnect_if_needed(connection)
        finally:
            node.release(connection)


async def _node_failed(cluster: RedisCluster, node: ClusterNode) -> None:
    """What redis-py's cluster client does when a node fails a command of its
    own: the node's connections are reopened before their next use, and the
    slot map is read again (under the client's lock) before the next call, so
    a replica that took over is found."""
    node.update_active_connections_for_reconnect()
    await node.disconnect_free_connections()
    cluster._initialize = True
