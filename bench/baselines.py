"""Baseline servers for bench/admission.py, run as their own processes.

- ``bare``: an aiohttp handler that reads the body and answers 202. The
  ceiling of any aiohttp server on this machine with this load generator.
- ``naive``: the same handler doing one awaited XADD per request: what
  admission into Redis costs without batching.

- ``upstream``: a trivial HTTP service (200, empty body) for bench/relay.py.

Usage: python bench/baselines.py bare|naive|upstream PORT [REDIS_URL]
"""

from __future__ import annotations

import sys

from aiohttp import web
from redis.asyncio import Redis


def bare_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"id": "x", "state": "queued"}, status=202)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    return app


def naive_app(redis_url: str) -> web.Application:
    redis = Redis.from_url(redis_url)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        entry: bytes = await redis.xadd("bench:naive", {"body": body})  # type: ignore[assignment]
        return web.json_response({"id": entry.decode(), "state": "queued"}, status=202)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    return app


def upstream_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "upstream":
        app = upstream_app()
    else:
        app = bare_app() if kind == "bare" else naive_app(sys.argv[3])
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
