"""A small, unchanged HTTP service for the demo and the tests.

It stands for the application behind the relay: it knows nothing of tidegate
beyond honouring ``Idempotency-Key`` the way a well-behaved service would (a
repeat of a key returns the first answer and has no second effect).

- ``POST /orders``: creates an order (``work_ms`` of simulated work), answers
  201 with the order as JSON;
- ``POST /reports``: same, slower (``report_ms``);
- ``POST /exports``: same, slower still (``export_ms``; the demo's surge);
- ``GET /orders/{n}``: reads an order back (for proxy routes);
- ``POST /fail``: always 500 (to see retries);
- ``POST /compensate``: records a compensation, once per Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class ServiceState:
    work_ms: int = 20
    report_ms: int = 200
    export_ms: int = 100
    orders: dict[int, dict[str, object]] = field(default_factory=dict)
    by_key: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    calls: int = 0
    keys_seen: list[str] = field(default_factory=list)
    compensations: dict[str, dict[str, object]] = field(default_factory=dict)
    """Compensation requests by Idempotency-Key (a repeat is not a second effect)."""
    compensation_calls: int = 0
    fail_compensations: int = 0
    """How many compensation calls to answer 503 before accepting (tests)."""


STATE = web.AppKey("state", ServiceState)


async def _create(request: web.Request, kind: str, delay_ms: int) -> web.Response:
    state = request.app[STATE]
    state.calls += 1
    key = request.headers.get("Idempotency-Key", "")
    state.keys_seen.append(key)
    if key and key in state.by_key:
        status, body = state.by_key[key]
        return web.Response(status=status, body=body, content_type="application/json")
    await asyncio.sleep(delay_ms / 1000)
    number = len(state.orders) + 1
    payload = (await request.read()).decode("utf-8", "replace")
    order = {"id": number, "kind": kind, "payload": payload, "idempotency_key": key}
    state.orders[number] = order
    body = json.dumps(order).encode()
    if key:
        state.by_key[key] = (201, body)
    return web.Response(status=201, body=body, content_type="application/json")


async def create_order(request: web.Request) -> web.Response:
    return await _create(request, "order", request.app[STATE].work_ms)


async def create_report(request: web.Request) -> web.Response:
    return await _create(request, "report", request.app[STATE].report_ms)


async def create_export(request: web.Request) -> web.Response:
    return await _create(request, "export", request.app[STATE].export_ms)


async def get_order(request: web.Request) -> web.Response:
    order = request.app[STATE].orders.get(int(request.match_info["n"]))
    if order is None:
        return web.json_response({"error": "no such order"}, status=404)
    return web.json_response(order)


async def fail(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.calls += 1
    state.keys_seen.append(request.headers.get("Idempotency-Key", ""))
    return web.json_response({"error": "always fails"}, status=500)


async def compensate(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.compensation_calls += 1
    if state.fail_compensations > 0:
        state.fail_compensations -= 1
        return web.json_response({"error": "try again"}, status=503)
    key = request.headers.get("Idempotency-Key", "")
    state.compensations.setdefault(key, await request.json())
    return web.json_response({"compensated": key})


def build_app(work_ms: int = 20, report_ms: int = 200) -> web.Application:
    app = web.Application()
    app[STATE] = ServiceState(work_ms=work_ms, report_ms=report_ms)
    app.router.add_post("/orders", create_order)
    app.router.add_get(r"/orders/{n:\d+}", get_order)
    app.router.add_post("/reports", create_report)
    app.router.add_post("/exports", create_export)
    app.router.add_post("/fail", fail)
    app.router.add_post("/compensate", compensate)
    return app
