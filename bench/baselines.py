"""Baseline servers for bench/admission.py, run as their own processes.

- ``bare``: an aiohttp handler that reads the body and answers 202. The
  ceiling of any aiohttp server on this machine with this load generator.
- ``naive``: the same handler doing one awaited XADD per request: what
  admission into Redis costs without batching.

- ``upstream``: a trivial HTTP service (200, a small body) for bench/relay.py
  and bench/sync_path.py.
- ``proxy``: a minimal aiohttp reverse proxy (one client session, the body
  read whole and passed on, the answer's status and body returned) for
  bench/sync_path.py: what any Python proxy on aiohttp costs.

Usage: python bench/baselines.py bare|naive|upstream|proxy PORT [REDIS_URL|UPSTREAM_URL]
"""

from __future__ import annotations

import sys

import aiohttp
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
        return web.Response(status=200, body=b'{"ok":true}', content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def proxy_app(upstream: str) -> web.Application:
    session: list[aiohttp.ClientSession] = []

    async def open_session(app: web.Application) -> None:
        session.append(aiohttp.ClientSession(auto_decompress=False))

    async def close_session(app: web.Application) -> None:
        await session[0].close()

    skip = {"host", "content-length", "connection", "transfer-encoding"}

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        async with session[0].request(
            request.method, upstream + request.path_qs, data=body, headers=headers
        ) as r:
            answer = {k: v for k, v in r.headers.items() if k.lower() not in skip}
            return web.Response(status=r.status, body=await r.read(), headers=answer)

    app = web.Application()
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "upstream":
        app = upstream_app()
    elif kind == "proxy":
        app = proxy_app(sys.argv[3])
    else:
        app = bare_app() if kind == "bare" else naive_app(sys.argv[3])
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
