"""A small admin HTTP server for the worker and scaler processes.

``/metrics`` serves a Prometheus registry; ``/healthz`` answers 200 while the
process's event loop runs; ``/readyz`` asks the process (503 with the reason
when it is not ready). The gateway has a richer admin app of its own, and
serves its ``/metrics`` with ``metrics_response`` too.

The text is rendered in a thread: with a thousand routes a scaler's registry
holds about 13,000 series and one rendering takes 100-200 ms of CPU.
On the event loop that would stall every route loop, Lease renewal and
probe for as long at every scrape; in a thread the loop keeps running
(the two share the interpreter, so the CPU is the same).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Readiness = Callable[[], str | None]
"""Returns None when ready, else why not."""


async def metrics_response(registry: CollectorRegistry) -> web.Response:
    """The registry in Prometheus text format, rendered off the event loop."""
    body = await asyncio.to_thread(generate_latest, registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve_admin(
    registry: CollectorRegistry, host: str, port: int, ready: Readiness | None = None
) -> web.AppRunner:
    async def metrics(request: web.Request) -> web.Response:
        return await metrics_response(registry)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        why = ready() if ready else None
        if why:
            return web.json_response({"status": "not ready", "reason": why}, status=503)
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
