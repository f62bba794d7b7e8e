"""Running a part as a process: until SIGTERM or SIGINT, then a graceful stop.

Every part's ``run`` is the same shape: an event loop, a ``stop`` event set
by SIGTERM (Kubernetes) or SIGINT (Ctrl-C), and the part's coroutine, which
drains in its own way once ``stop`` is set. It is written once, here.
"""

from __future__ import annotations

import asyncio
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
