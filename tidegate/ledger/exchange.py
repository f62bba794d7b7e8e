"""Script calls on one connection: sent in one write, every reply read back.

Error replies come back as values (the connection stays in step); a
connection that failed mid-exchange is dropped, never reused, and the
failure says whether anything may have run (``OutcomeUnknown``) or not
(``RedisUnavailable``). ``acknowledged`` reads a ``WAIT`` reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.asyncio.connection import Connection as RedisConnection
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    ResponseError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from tidegate.errors import OutcomeUnknown, RedisUnavailable
from tidegate.ledger.calls import ScriptCall
from tidegate.ledger.client import UNAVAILABLE
from tidegate.ledger.script_registry import _packed


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
