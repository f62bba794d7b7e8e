"""Operator commands that need only Redis: ``tidegate status`` and ``tidegate replay``
(with progress on stderr for a large log)."""

from __future__ import annotations

import json
import sys
import time

from tidegate.ledger.store import Store
from tidegate.settings import Settings


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


async def print_status(settings: Settings, *, as_json: bool = False) -> int:
    """One row per route: backlog, pending, rates, replicas (from the scaler), throttle."""
    store = Store.open(settings.redis)
    try:
        routes = await store.routes_status(settings)
    finally:
        await store.aclose()
    if as_json:
        print(json.dumps({"routes": {n: r.as_dict() for n, r in routes.items()}}, indent=2))
        return 0
    print(
        f"{'ROUTE':<20} {'BACKLOG':>9} {'PENDING':>8} {'IN/S':>8} {'OUT/S':>8} "
        f"{'REPLICAS':>10}  NOTE"
    )
    for name, row in routes.items():
        if row.backlog is None:
            dashes = f"{'-':>9} {'-':>8} {'-':>8} {'-':>8} {'-':>10}"
            print(f"{name:<20} {dashes}  proxy to {row.upstream}")
            continue
        found, view = row.backlog, row.scaler
        waiting = f"{found.waiting}" if found.exact else f">={found.waiting}"
        replicas = f"{view.ready_replicas}/{view.desired_replicas}" if view else "-"
        note = view.reason if view else "no scaler view"
        if view and view.predicted_rate is not None:
            note += f"; predicts {view.predicted_rate:.1f}/s"
        if view and view.exhausted:
            note = f"EXHAUSTED (needs {view.needed_replicas}): {note}"
        if row.throttle:
            note = f"THROTTLED at {row.throttle.rate_per_s:.1f}/s ({row.throttle.reason}); {note}"
        arrival = _rate(view.arrival_rate if view else None)
        drain = _rate(view.drain_rate if view else None)
        print(
            f"{name:<20} {waiting:>9} {found.pending:>8} {arrival:>8} {drain:>8} "
            f"{replicas:>10}  {note}"
        )
    return 0


class Progress:
    """Replay progress on stderr: a line at most every ``every_s`` seconds
    (and none for a log replayed within the first), so a large log shows that
    it moves and how far it has to go, and a small one stays quiet."""

    def __init__(self, route: str, total: int, every_s: float = 2.0) -> None:
        self.route, self.total, self.every_s = route, total, every_s
        self.started = self.last = time.monotonic()
        self.lines = 0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            return
        self.last = now
        self.lines += 1
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        rate = done / max(now - self.started, 1e-9)
        print(
            f"route {self.route}: {done} of {self.total} event(s) replayed{share}, {rate:.0f}/s",
            file=sys.stderr,
            flush=True,
        )


async def replay_route(settings: Settings, route_name: str, *, every_s: float = 2.0) -> int:
    """Rebuild every projection of a route from its event stream."""
    route = settings.route(route_name)
    store = Store.open(settings.redis)
    try:
        ledger = store.jobs(settings.routes)
        progress = Progress(route.name, await ledger.event_count(route.name), every_s)
        report = await ledger.replay(route.name, progress=progress)
    finally:
        await store.aclose()
    print(
        f"route {route.name}: replayed {report.events} event(s) of {report.jobs} job(s)"
        + (f"; {report.refused} refused (log inconsistent)" if report.refused else "")
    )
    return 1 if report.refused else 0
