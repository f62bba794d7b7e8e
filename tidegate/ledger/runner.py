"""How script calls reach Redis: one round trip each, or coalesced.

Both parts run their script calls through a ``Runner``. Built ``batched``
(the worker's runtime, the gateway), concurrent calls share pipelined round
trips: a worker running dozens of jobs at once starts and finishes them at
about the same moments, and sending those calls together costs one round
trip and one wake-up instead of one each. Plain (tools, tests, the scaler),
each call is its own round trip. Callers see no difference: ``run`` returns
the call's typed answer or raises the translated error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tidegate.ledger.calls import R, ScriptCall
from tidegate.ledger.client import Connection
from tidegate.ledger.coalesce import Coalescer
from tidegate.ledger.scripts import call, run_pipeline


class _Batcher(Coalescer[ScriptCall[Any], Any]):
    def __init__(self, redis: Connection, *, max_batch: int) -> None:
        super().__init__(max_batch=max_batch, name="script")
        self._redis = redis

    async def flush(self, items: Sequence[ScriptCall[Any]]) -> list[Any]:
        return await run_pipeline(self._redis, items)


class Runner:
    """Runs script calls, plainly or coalesced with concurrent ones."""

    def __init__(self, redis: Connection, *, batched: bool = False, max_batch: int = 256) -> None:
        self._redis = redis
        self._batcher = _Batcher(redis, max_batch=max_batch) if batched else None

    @property
    def batches(self) -> int:
        """Round trips of coalesced calls so far (0 when plain)."""
        return self._batcher.batches if self._batcher else 0

    def start(self) -> None:
        if self._batcher:
            self._batcher.start()

    async def close(self) -> None:
        if self._batcher:
            await self._batcher.close()

    async def run(self, script_call: ScriptCall[R]) -> R:
        if self._batcher is None:
            return await call(self._redis, script_call)
        return script_call.read(await self._batcher.submit(script_call))
