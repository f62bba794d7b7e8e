"""The admin port: metrics, probes and per-route status for operators.

- ``/metrics``: Prometheus text format.
- ``/healthz``: the process is alive (always 200 while it serves).
- ``/readyz``: 503 while Redis is unreachable or refuses writes (out of
  memory: admission answers 503 then too), before the result subscription
  is up, or while draining for shutdown, so that Kubernetes stops sending
  traffic. The probe reads state kept by a background check; it never waits
  on Redis itself.
- ``/status``: JSON per route: backlog (waiting), pending, stream length,
  and the scaler's latest view (rates, replicas; ``tidegate.ledger.route_status``).
- ``/status/history``: the last 15 minutes of the same figures per route,
  sampled by the gateway (``gateway.status_history``); ``?since=<unix s>``
  for only the samples after it.
- ``/``: a live page over ``/status`` for people (``gateway.status_page``).
"""

from __future__ import annotations

import math
import time

from aiohttp import web

from gateway import problems, status_page
from gateway.context import GATEWAY
from tidegate.admin_server import metrics_response
from tidegate.errors import RedisCommandError, RedisUnavailable


async def metrics(request: web.Request) -> web.Response:
    return await metrics_response(request.app[GATEWAY].metrics.registry)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    reasons = []
    if gw.draining:
        reasons.append("draining for shutdown")
    if not gw.redis_ok:
        reasons.append("Redis unreachable")
    elif gw.writes_refused:
        reasons.append("Redis refuses writes (out of memory)")
    if not gw.waiter.subscribed.is_set():
        reasons.append("result subscription not established")
    if reasons:
        return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
    return web.json_response({"status": "ready"})


async def status(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    try:
        routes = await gw.store.routes_status(gw.settings)
    except (RedisUnavailable, RedisCommandError) as e:
        rejection = gw.rejection(e)
        gw.note(rejection)
        return rejection.response()
    return web.json_response(
        {
            "routes": {name: route.as_dict() for name, route in routes.items()},
            "waiting_requests": gw.waiter.waiting,
        }
    )


async def history(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    raw = request.query.get("since")
    since_s = None
    if raw is not None:
        try:
            since_s = float(raw)
        except ValueError:
            since_s = math.nan
        if not math.isfinite(since_s):
            return problems.problem(
                400,
                "bad-query",
                "Bad since",
                "since must be a time in unix seconds (a finite number), "
                "the t_s of the last sample the page has",
            )
    return web.json_response(gw.history.as_dict(time.time(), since_s))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    app.router.add_get("/status/history", history)
    status_page.add_routes(app)
