"""A small admin HTTP server for the worker and scaler processes.

``/metrics`` serves a Prometheus registry; ``/healthz`` answers 200 while the
process's event loop runs; ``/readyz`` asks the process (503 with the reason
when it is not ready). The gateway has a richer admin app of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Readiness = Callable[[], str | None]
"""Returns None when ready, else why not."""


async def serve_admin(
    registry: CollectorRegistry, host: str, port: int, ready: Readiness | None = None
) -> web.AppRunner:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

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
