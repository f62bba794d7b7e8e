"""Running a part as a process: until SIGTERM or SIGINT, then a graceful stop.

Every part's ``run`` is the same shape: an event loop, a ``stop`` event set
by SIGTERM (Kubernetes) or SIGINT (Ctrl-C), and the part's coroutine, which
drains in its own way once ``stop`` is set. It is written once, here.

Once a part has started, it calls ``settle_heap``: everything start-up built
(settings, apps, clients, route loops, imported modules) lives as long as the
process, and a full collection would walk all of it again and again.

The loop is uvloop's (libuv) unless ``TIDEGATE_EVENT_LOOP=asyncio`` asks for
the standard library's: measured side by side, uvloop admitted about 17%
more requests per second, served a sync route at 8 connections about 23%
faster and relayed as fast (docs/benchmarks.md, "uvloop"). Everything is
written against asyncio's interfaces, so either loop runs it; the tests run
on asyncio's, and those of the protocols of our own (the Redis link, the
upstream client, the proxy, the relay) and of hostile clients on both
(``both_loops`` in tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from tidegate import tracing
from tidegate.errors import ConfigError

EVENT_LOOP_ENV = "TIDEGATE_EVENT_LOOP"
EVENT_LOOPS = ("uvloop", "asyncio")
"""The event loops a part may run on; the first is the default."""


def event_loop_name(env: Mapping[str, str] = os.environ) -> str:
    """The loop the parts run on, from ``TIDEGATE_EVENT_LOOP`` (default uvloop).

    Raises ConfigError for a name that is not a loop, and for uvloop where it
    is not installed (it is a dependency, but not on every platform)."""
    name = env.get(EVENT_LOOP_ENV, "").strip().lower() or EVENT_LOOPS[0]
    if name not in EVENT_LOOPS:
        raise ConfigError([f"{EVENT_LOOP_ENV}={name!r}: choose one of {', '.join(EVENT_LOOPS)}"])
    if name == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise ConfigError(
                [f"uvloop is not installed here; set {EVENT_LOOP_ENV}=asyncio"]
            ) from None
    return name


def run_on_loop(main: Coroutine[Any, Any, None], name: str) -> None:
    """Run ``main`` to completion on a new loop of the named kind."""
    if name == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def run_until_signalled(
    serve: Callable[[asyncio.Event], Awaitable[Any]], *, traced: str | None = None
) -> None:
    """Run ``serve(stop)`` in a new event loop (``event_loop_name``); SIGTERM
    and SIGINT set ``stop``. ``traced``: the part's name, for a part that
    makes spans when the environment turns tracing on (``tidegate.tracing``;
    the spans still buffered are sent once ``serve`` returns)."""

    name = event_loop_name()  # before anything starts: a wrong name is one line and exit 2
    if traced is not None:
        tracing.start(traced)  # a ConfigError here is one line and exit 2 as well

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    try:
        run_on_loop(main(), name)
    finally:
        tracing.stop()


def settle_heap() -> None:
    """Keep what start-up built out of the garbage collector's way.

    Collects once, then moves every object alive now into the permanent
    generation (``gc.freeze``), which collections never walk; what the part
    allocates from here on is collected as before. A full collection of what
    a gateway builds at start-up pauses it for tens of ms on a small machine
    (every request in flight waits: that is a p99), and for nothing once
    frozen (``bench/gc_pauses.py``).
    """
    gc.collect()
    gc.freeze()
