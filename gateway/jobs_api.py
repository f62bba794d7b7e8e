"""The job API under ``/_tidegate/``: the client redeems its voucher here.

- ``GET /_tidegate/jobs/{id}``: the job's projection (state, attempts, times).
- ``GET /_tidegate/jobs/{id}/result``: the stored upstream response once the
  job has ended; 202 with ``Retry-After`` while it has not.
- ``GET /_tidegate/jobs/{id}/events``: the job's event history.
- ``DELETE /_tidegate/jobs/{id}``: cancel while queued; 409 once running.
- ``GET /_tidegate/openapi.json``: this API, described.

A malformed id is the same 404 as an unknown one: ids are capabilities and the
API does not tell a guess from a typo.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from gateway import answers, problems
from gateway.context import GATEWAY
from tidegate.errors import JobNotFound, TransitionRefused
from tidegate.job_view import JOBS_PATH, job_view
from tidegate.keys import route_of
from tidegate.ledger import TERMINAL_STATES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        headers=headers,
    )


async def get_job(request: web.Request) -> web.Response:
    gw, job_id = request.app[GATEWAY], request.match_info["job_id"]
    try:
        projection = await gw.ledger.projection(job_id)
    except JobNotFound:
        return problems.job_not_found(job_id)
    return _json(job_view(job_id, projection))


async def get_result(request: web.Request) -> web.StreamResponse:
    gw, job_id = request.app[GATEWAY], request.match_info["job_id"]
    try:
        projection = await gw.ledger.projection(job_id)
        reply = await gw.ledger.result(job_id)
    except JobNotFound:
        return problems.job_not_found(job_id)
    state = projection.get("state", "")
    if reply is None:
        if state in TERMINAL_STATES:
            return answers.ended_without_result(job_id, state)
        return _json(
            job_view(job_id, projection),
            status=202,
            headers={"Retry-After": answers.RETRY_AFTER, "Location": JOBS_PATH + job_id},
        )
    route = next((r for r in gw.settings.routes if r.name == route_of(job_id)), None)
    forwarding = route.forwarding if route is not None else answers.AS_SENT
    return answers.stored(job_id, reply, forwarding=forwarding)


async def get_events(request: web.Request) -> web.Response:
    gw, job_id = request.app[GATEWAY], request.match_info["job_id"]
    try:
        events = await gw.ledger.events(job_id)
    except JobNotFound:
        return problems.job_not_found(job_id)
    return _json({"id": job_id, "events": events})


async def cancel_job(request: web.Request) -> web.Response:
    gw, job_id = request.app[GATEWAY], request.match_info["job_id"]
    try:
        await gw.ledger.cancel(job_id)
    except JobNotFound:
        return problems.job_not_found(job_id)
    except TransitionRefused as e:
        return problems.problem(
            409,
            "job-not-cancellable",
            "Job can no longer be cancelled",
            f"Job {job_id} is {e.state}; only a queued job can be cancelled.",
            state=e.state,
        )
    return _json(job_view(job_id, await gw.ledger.projection(job_id)))


async def openapi(request: web.Request) -> web.Response:
    text = (resources.files("gateway") / "openapi.json").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/json")


def add_routes(
    app: web.Application,
    guard: Callable[[Handler], Handler],
    own: Callable[[Handler], Handler] = lambda h: h,
) -> None:
    """Register the job API; ``guard`` wraps each handler (error translation),
    ``own`` the job handlers (a tenant sees only its own jobs)."""
    app.router.add_get("/_tidegate/openapi.json", guard(openapi))
    app.router.add_get("/_tidegate/jobs/{job_id}", guard(own(get_job)))
    app.router.add_delete("/_tidegate/jobs/{job_id}", guard(own(cancel_job)))
    app.router.add_get("/_tidegate/jobs/{job_id}/result", guard(own(get_result)))
    app.router.add_get("/_tidegate/jobs/{job_id}/events", guard(own(get_events)))
