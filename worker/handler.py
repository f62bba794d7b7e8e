"""The handler executor: run a Python function for each job, in process.

``tidegate worker --app module:function`` imports ``module`` and calls
``function(job)`` (a coroutine function taking a ``tidegate.envelope.Job``).
It may return a ``Reply``, ``bytes``/``str`` (200 with that body) or any
JSON-serialisable value (200, application/json). An exception is a retryable
failure; to refuse a job for good, return a 4xx ``Reply``.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from tidegate.envelope import Failure, Job, Reply
from tidegate.errors import ConfigError

HandlerFn = Callable[[Job], Awaitable[Any]]


def load_handler(spec: str) -> Callable[..., Awaitable[Any]]:
    """Import ``module:function``; ConfigError saying what is wrong otherwise."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError([f"--app {spec}: expected module:function"])
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError([f"--app {spec}: cannot import {module_name}: {e}"]) from e
    fn = getattr(module, attr, None)
    if fn is None or not inspect.iscoroutinefunction(fn):
        raise ConfigError([f"--app {spec}: {attr} is not an async function in {module_name}"])
    return fn  # type: ignore[no-any-return]


def to_reply(value: Any) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, bytes | str):
        data = value.encode() if isinstance(value, str) else value
        return Reply(200, (("Content-Type", "application/octet-stream"),), data)
    return Reply(200, (("Content-Type", "application/json"),), json.dumps(value).encode())


CompensateFn = Callable[[Job, str], Awaitable[Any]]


class Handler:
    """Adapts a handler function (and an optional compensate function) to the
    executor interface. ``compensate(job, error)`` undoes what a dead-lettered
    job may have done; it is retried until it returns, so make it idempotent."""

    def __init__(self, fn: HandlerFn, compensate_fn: CompensateFn | None = None) -> None:
        self.fn = fn
        self.compensate_fn = compensate_fn

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def __call__(self, job: Job) -> Reply | Failure:
        try:
            return to_reply(await self.fn(job))
        except Exception as e:
            return Failure(f"handler raised {type(e).__name__}: {e}", True)

    async def compensate(self, job: Job, error: str) -> Reply | Failure | None:
        return await compensate_with(self.compensate_fn, job, error)


async def compensate_with(fn: CompensateFn | None, job: Job, error: str) -> Reply | Failure | None:
    """Run a compensate function as every handler executor does (None: none given)."""
    if fn is None:
        return None
    try:
        return to_reply(await fn(job, error))
    except Exception as e:
        return Failure(f"compensate raised {type(e).__name__}: {e}", True)
