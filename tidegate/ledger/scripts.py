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

from collections.abc import Sequence
from typing import Any

from redis.exceptions import (
    NoScriptError,
    ResponseError,
)

from tidegate.ledger.calls import R, ScriptCall
from tidegate.ledger.client import Connection, translate_reply
from tidegate.ledger.exchange import acknowledged
from tidegate.ledger.script_registry import SCRIPTS, Script, packed_call
from tidegate.ledger.transport import transport

__all__ = ["SCRIPTS", "Script", "acknowledged", "call", "load_all", "packed_call", "run_calls"]


async def load_all(redis: Connection) -> None:
    """Put every script into the server's cache (every primary's, on a cluster)."""
    carrier = transport(redis)
    for script in SCRIPTS.values():
        await carrier.load(script.source)


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
    return await transport(redis).pipeline(calls, wait)
