"""Lua scripts shipped as package files, called by SHA.

Every write that touches a job is one Lua call so that it is atomic: the event
is appended and the projection updated together, the result stored together
with the acknowledgement. ``fold.lua`` holds the one definition of the
projection fold and ``bucket.lua`` the one token bucket; both are prepended
to every script.

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

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from tidegate.errors import OutcomeUnknown, RedisUnavailable
from tidegate.ledger.calls import CALLS, Arg, R, ScriptCall
from tidegate.ledger.client import UNAVAILABLE, translate_reply


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str


def _load() -> dict[str, Script]:
    folder = resources.files("tidegate.ledger") / "lua"
    prelude = "\n".join(
        (folder / f"{name}.lua").read_text(encoding="utf-8") for name in ("fold", "bucket")
    )
    out = {}
    for name in (call.SCRIPT for call in CALLS):
        source = prelude + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8")
        out[name] = Script(name, source, hashlib.sha1(source.encode()).hexdigest())
    return out


SCRIPTS = _load()


async def load_all(redis: Redis) -> None:
    """Put every script into the server's cache."""
    for script in SCRIPTS.values():
        await redis.script_load(script.source)


async def call(redis: Redis, script_call: ScriptCall[R]) -> R:
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
    redis: Redis, calls: Sequence[ScriptCall[Any]], *, wait: tuple[int, int] | None = None
) -> tuple[list[Any], int]:
    """Many calls in one round trip: each call's read answer or its error, in
    order, and how many replicas acknowledged (with ``wait``; else 0)."""
    results = await run_pipeline(redis, calls, wait=wait)
    acked = int(results.pop()) if wait else 0
    return [
        r if isinstance(r, Exception) else c.read(r) for c, r in zip(calls, results, strict=True)
    ], acked


async def run_pipeline(
    redis: Redis, calls: Sequence[ScriptCall[Any]], *, wait: tuple[int, int] | None = None
) -> list[Any]:
    """Send many script calls in one round trip; per-call errors come back as values.

    Calls answered NOSCRIPT did nothing; only those are sent again, after loading.
    ``wait=(replicas, timeout_ms)`` appends WAIT on the same connection, so the
    writes are acknowledged by that many replicas before this returns; the
    number that did is appended to the (raw) results.
    """
    results = await _pipeline(redis, calls, wait)
    acked = results.pop() if wait else None
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        await load_all(redis)
        again = await _pipeline(redis, [calls[i] for i in missing], wait)
        if wait:
            acked = min(acked, again.pop())
        for i, value in zip(missing, again, strict=True):
            results[i] = value
    for i, value in enumerate(results):
        if isinstance(value, ResponseError):
            results[i] = translate_reply(value, f"running the {calls[i].SCRIPT} script")
    if wait:
        results.append(acked)
    return results


def pack(args: Sequence[Arg]) -> bytes:
    """Encode one command in RESP.

    hiredis's C packer: redis-py's own packer re-joins its buffer after every
    argument, and for a batched admit call with hundreds of arguments that
    copying dominated the gateway's time.
    """
    # The stub types the tuple as of length one; any length is accepted.
    packed: bytes = hiredis.pack_command(tuple(args))  # type: ignore[arg-type]
    return packed


async def _pipeline(
    redis: Redis, calls: Sequence[ScriptCall[Any]], wait: tuple[int, int] | None
) -> list[Any]:
    commands = []
    for c in calls:
        keys = c.keys()
        commands.append(pack(["EVALSHA", SCRIPTS[c.SCRIPT].sha, len(keys), *keys, *c.argv()]))
    if wait:
        commands.append(pack(["WAIT", *wait]))
    data = b"".join(commands)
    pool = redis.connection_pool
    try:
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    except UNAVAILABLE as e:
        raise RedisUnavailable(f"Redis unreachable (nothing was sent): {e}") from e
    try:
        await connection.send_packed_command(data)
        results: list[Any] = []
        for _ in commands:
            try:
                results.append(await connection.read_response())
            except ResponseError as e:  # an error reply; the connection stays in step
                results.append(e)
    except BaseException as e:
        # Replies may still be in flight (cancelled, timed out, reset): the
        # connection is out of step and must not be reused.
        await connection.disconnect()
        if isinstance(e, UNAVAILABLE):
            raise OutcomeUnknown(
                f"Redis did not answer {len(calls)} script call(s) it may have run: {e}"
            ) from e
        raise
    finally:
        await pool.release(connection)
    return results
