"""Lua scripts shipped as package files, called by SHA.

Every write that touches a job is one Lua call so that it is atomic: the event
is appended and the projection updated together, the result stored together
with the acknowledgement. ``fold.lua`` holds the one definition of the
projection fold, ``bucket.lua`` the one token bucket and ``attempt.lua`` the
one start of an attempt; all three are prepended to every script.

Scripts are called with EVALSHA. After a Redis restart the script cache is
empty and Redis answers NOSCRIPT; ``call`` and ``run_pipeline`` then load the
scripts and send the same commands again. That resend is safe: a NOSCRIPT
call did nothing, and the calls of a pipeline all use scripts from the same
cache, which was either empty or not.

Failures are translated here, at the boundary: error replies per call
(``client.translate_reply``: out of memory is ``RedisFull``), a
connection that cannot be had is ``RedisUnavailable`` (nothing was sent), and
a connection lost or timed out once the commands were on their way is
``OutcomeUnknown``: the scripts may have run, and nobody may say they did not.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.connection import Connection as RedisConnection
from redis.exceptions import (
    AskError,
    MaxConnectionsError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from tidegate.errors import OutcomeUnknown, RedisUnavailable
from tidegate.ledger.calls import CALLS, R, ScriptCall
from tidegate.ledger.client import UNAVAILABLE, Connection, LinkedRedis, translate_reply
from tidegate.ledger.link import pack


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str


def _load() -> dict[str, Script]:
    folder = resources.files("tidegate.ledger") / "lua"
    preludes = ("fold", "bucket", "attempt")
    prelude = "\n".join((folder / f"{name}.lua").read_text(encoding="utf-8") for name in preludes)
    out = {}
    for name in (call.SCRIPT for call in CALLS):
        source = prelude + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8")
        out[name] = Script(name, source, hashlib.sha1(source.encode()).hexdigest())
    return out


SCRIPTS = _load()


async def load_all(redis: Connection) -> None:
    """Put every script into the server's cache (every primary's, on a cluster)."""
    for script in SCRIPTS.values():
        if isinstance(redis, RedisCluster):
            await redis.execute_command("SCRIPT LOAD", script.source, target_nodes=redis.PRIMARIES)
        else:
            await redis.script_load(script.source)


async def call(redis: Connection, script_call: ScriptCall[R]) -> R:
    """Run one script call, loading the script first if the server has forgotten it.

    Sent through the same path as pipelines (hiredis packing, one pooled
    connection): it is cheaper than redis-py's generic command path.
    """
    (result,), _ = await run_calls(redis, [script_call])
    if isinstance(result, Exception):
        raise result
    answer: R = result
    return answer


async def run_calls(
    redis: Connection, calls: Sequence[ScriptCall[Any]], *, wait: tuple[int, int] | None = None
) -> tuple[list[Any], int]:
    """Many calls in one round trip: each call's read answer or its error, in
    order, and how many replicas acknowledged (with ``wait``; else 0)."""
    results = await run_pipeline(redis, calls, wait=wait)
    acked = acknowledged(results.pop()) if wait else 0
    return [
        r if isinstance(r, Exception) else c.read(r) for c, r in zip(calls, results, strict=True)
    ], acked


async def run_pipeline(
    redis: Connection, calls: Sequence[ScriptCall[Any]], *, wait: tuple[int, int] | None = None
) -> list[Any]:
    """Send many script calls in one round trip; per-call errors come back as values.

    Calls answered NOSCRIPT did nothing; only those are sent again, after loading.
    ``wait=(replicas, timeout_ms)`` appends WAIT on the same connection, so the
    writes are acknowledged by that many replicas before this returns; the
    number that did is appended to the (raw) results.
    """
    results = await _pipeline(redis, calls, wait)
    acked = acknowledged(results.pop()) if wait else 0
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        await load_all(redis)
        again = await _pipeline(redis, [calls[i] for i in missing], wait)
        if wait:
            acked = min(acked, acknowledged(again.pop()))
        for i, value in zip(missing, again, strict=True):
            results[i] = value
    for i, value in enumerate(results):
        if isinstance(value, ResponseError):
            results[i] = translate_reply(value, f"running the {calls[i].SCRIPT} script")
    if wait:
        results.append(acked)
    return results


async def _pipeline(
    redis: Connection, calls: Sequence[ScriptCall[Any]], wait: tuple[int, int] | None
) -> list[Any]:
    if isinstance(redis, RedisCluster):
        return await _cluster_pipeline(redis, calls, wait)
    # A WAIT holds its connection until replicas answer: not on the shared link.
    link = redis.link() if isinstance(redis, LinkedRedis) and wait is None else None
    if link is not None:
        return await link.exchange(_packed(calls, None), len(calls))
    pool = redis.connection_pool
    try:
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    except UNAVAILABLE as e:
        raise RedisUnavailable(f"Redis unreachable (nothing was sent): {e}") from e
    try:
        return await _exchange(connection, calls, wait)
    finally:
        await pool.release(connection)


async def _exchange(
    connection: AbstractConnection, calls: Sequence[ScriptCall[Any]], wait: tuple[int, int] | None
) -> list[Any]:
    """Send the calls (and WAIT) on one connection; one reply or error each."""
    sent = False
    try:
        await connection.send_packed_command(_packed(calls, wait))
        sent = True
        results = await _replies(connection, len(calls) + (1 if wait else 0))
    except BaseException as e:
        # Replies may still be in flight (cancelled, timed out, reset): the
        # connection is out of step and must not be reused.
        await connection.disconnect()
        # AttributeError: the connection was closed under us (another task
        # read a cluster's slot map again, which closes the old nodes'
        # connections); redis-py then finds no stream to write to or read from.
        if isinstance(e, AttributeError) and not sent:
            raise RedisUnavailable(f"the connection closed before sending: {e}") from e
        if isinstance(e, (*UNAVAILABLE, AttributeError)):
            raise OutcomeUnknown(
                f"Redis did not answer {len(calls)} script call(s) it may have run: {e}"
            ) from e
        raise
    return results


def acknowledged(reply: Any) -> int:
    """How many replicas a WAIT reply says acknowledged the writes before it.

    WAIT answers an error where there is nothing to wait for: on a replica
    (a master that was just demoted by a failover, still reached through an
    old address or slot map) and on a node that is going down. Those writes
    reached no replica, so that is 0 acknowledgements: a route that asks for
    ``replicas_ack`` then refuses the admission as not replicated (503),
    instead of failing on the error as a number.
    """
    if isinstance(reply, BaseException):
        return 0
    try:
        return int(reply)
    except (TypeError, ValueError):
        return 0


def packed_call(script_call: ScriptCall[Any]) -> bytes:
    """One call as the EVALSHA command it is sent as (to go behind another
    command on a connection of its own: ``groups.ConsumerGroup.read_then``)."""
    return _packed([script_call], None)


def _packed(calls: Sequence[ScriptCall[Any]], wait: tuple[int, int] | None) -> bytes:
    """The calls as EVALSHA commands (and WAIT), in one buffer."""
    commands = []
    for c in calls:
        keys = c.keys()
        commands.append(pack(["EVALSHA", SCRIPTS[c.SCRIPT].sha, len(keys), *keys, *c.argv()]))
    if wait:
        commands.append(pack(["WAIT", *wait]))
    return b"".join(commands)


_STANDARD_READ = RedisConnection.read_response


async def _replies(connection: AbstractConnection, count: int) -> list[Any]:
    """``count`` replies, an error reply as its ResponseError (the connection
    stays in step). Many are read under one timeout straight from the
    connection's parser: ``read_response`` arms a timeout per reply, which
    cost more than parsing the reply in a pipeline of a few hundred calls."""
    results: list[Any] = []
    parse = getattr(connection, "_read_response_from_parser", None)
    standard = type(connection).read_response is _STANDARD_READ  # not a test double's
    if count == 1 or parse is None or not standard:
        for _ in range(count):
            try:
                results.append(await connection.read_response())
            except ResponseError as e:
                results.append(e)
        return results
    timeout_s = getattr(connection, "socket_timeout", None)
    try:
        async with asyncio.timeout(timeout_s):
            for _ in range(count):
                try:
                    results.append(await parse())
                except ResponseError as e:
                    results.append(e)
    except TimeoutError as e:
        raise RedisTimeoutError(f"Redis did not answer {count} calls within {timeout_s} s") from e
    except OSError as e:
        raise RedisConnectionError(f"reading {count} replies: {e}") from e
    return results


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
