"""Running a part as a process: until SIGTERM or SIGINT, then a graceful stop.

Every part's ``run`` is the same shape: an event loop, a ``stop`` event set
by SIGTERM (Kubernetes) or SIGINT (Ctrl-C), and the part's coroutine, which
drains in its own way once ``stop`` is set. It is written once, here.

Once a part has started, it calls ``settle_heap``: everything start-up built
(settings, apps, clients, route loops, imported modules) lives as long as the
process, and a full collection would walk all of it again and again.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable
from typing import Any


def run_until_signalled(serve: Callable[[asyncio.Event], Awaitable[Any]]) -> None:
    """Run ``serve(stop)`` in a new event loop; SIGTERM and SIGINT set ``stop``."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    asyncio.run(main())


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
