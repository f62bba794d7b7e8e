"""A job as a client sees it: the view of its projection, and its links.

One shape for every place a job is shown: the job API
(``GET /_tidegate/jobs/{id}``), the 202 voucher's links, and the body of a
completion callback, so what a receiver is told equals what it could read.
"""

from __future__ import annotations

from typing import Any

from tidegate.keys import route_of

JOBS_PATH = "/_tidegate/jobs/"

_INT_FIELDS = ("attempts", "status")
_TIME_FIELDS = ("accepted_at_ms", "started_at_ms", "finished_at_ms", "updated_at_ms", "deadline_ms")
_TEXT_FIELDS = ("last_error", "consumer", "method", "path")
_CALLBACK_FIELD = "callback_"


def job_links(job_id: str) -> dict[str, str]:
    base = JOBS_PATH + job_id
    return {"self": base, "result": base + "/result", "events": base + "/events"}


def job_view(job_id: str, projection: dict[str, str]) -> dict[str, Any]:
    """The job's state, attempts, times and links; with a callback, how each
    of its deliveries ended (``{"succeeded": {"outcome": "delivered",
    "attempts": 1}}``)."""
    view: dict[str, Any] = {"id": job_id, "route": route_of(job_id)}
    view["state"] = projection.get("state", "unknown")
    for name in _INT_FIELDS + _TIME_FIELDS:
        if projection.get(name):
            view[name] = int(projection[name])
    for name in _TEXT_FIELDS:
        if projection.get(name):
            view[name] = projection[name]
    callbacks = {}
    for name, value in projection.items():
        if name.startswith(_CALLBACK_FIELD):
            outcome, _, attempts = value.partition(":")
            callbacks[name[len(_CALLBACK_FIELD) :]] = {
                "outcome": outcome,
                "attempts": int(attempts or 0),
            }
    if callbacks:
        view["callbacks"] = callbacks
    view["links"] = job_links(job_id)
    return view
