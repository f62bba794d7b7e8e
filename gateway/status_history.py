"""The last 15 minutes of every queued route, kept by the gateway for its status page.

A page that polls ``/status`` can only chart what it has seen since it was
opened, and loses it on reload. So the gateway samples the same figures
itself, every ``gateway.status_history_interval_s`` (one ``routes_status``
read: a few Redis round trips whatever the number of routes), and keeps the
last ``WINDOW_S`` of them in memory; ``/status/history`` hands them out as
columns, and the page draws them with axes.

Per route and sample: the backlog (waiting, pending) measured on the spot,
and from the scaler's latest view the in, out and refused rates, the
replicas (desired, ready, max) and the exhausted flag; the throttle's rate
from the route's throttle hash (``None``: not throttled). Figures nobody
published (no scaler running) are ``None``, never 0, so the page draws a gap
rather than a false zero. A failed read (Redis down) records nothing: the
gap in time shows it.

Each gateway keeps its own copy (they read the same Redis, so replicas show
the same figures); a restarted gateway starts empty. Memory is bounded:
``WINDOW_S / interval`` samples per route, a tuple of a dozen numbers each.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from tidegate.ledger.store import RouteStatus

WINDOW_S = 900.0
"""How far back the history goes: 15 minutes."""


@dataclass(frozen=True, slots=True)
class Sample:
    t_s: float
    """Unix seconds when the figures were read."""
    backlog: int
    pending: int
    in_per_s: float | None
    out_per_s: float | None
    refused_per_s: float | None
    desired_replicas: int | None
    ready_replicas: int | None
    max_replicas: int | None
    exhausted: bool | None
    throttle_per_s: float | None
    """The throttle's rate; None while the route is not throttled."""

    @classmethod
    def of(cls, t_s: float, status: RouteStatus) -> Sample | None:
        """The sample a route's status gives (None for a proxy route: nothing queues)."""
        if status.backlog is None:
            return None
        view = status.scaler
        return cls(
            t_s=round(t_s, 3),
            backlog=status.backlog.waiting,
            pending=status.backlog.pending,
            in_per_s=_rate(view.arrival_rate) if view else None,
            out_per_s=_rate(view.drain_rate) if view else None,
            refused_per_s=_rate(view.refused_rate) if view else None,
            desired_replicas=view.desired_replicas if view else None,
            ready_replicas=view.ready_replicas if view else None,
            max_replicas=view.max_replicas if view else None,
            exhausted=view.exhausted if view else None,
            throttle_per_s=_rate(status.throttle.rate_per_s) if status.throttle else None,
        )


COLUMNS = tuple(f.name for f in fields(Sample))


def _rate(value: float) -> float:
    return round(value, 3)


class StatusHistory:
    """Per route, the samples of the last ``WINDOW_S``, oldest first."""

    def __init__(self, interval_s: float, window_s: float = WINDOW_S) -> None:
        if not interval_s > 0:
            raise ValueError(f"the sampling interval must be positive, not {interval_s}")
        self.interval_s = interval_s
        self.window_s = window_s
        self._keep = math.ceil(window_s / interval_s) + 1
        self._routes: dict[str, deque[Sample]] = {}

    def record(self, now_s: float, statuses: Mapping[str, RouteStatus]) -> None:
        """Add one sample per queued route and forget what left the window."""
        for name, status in statuses.items():
            sample = Sample.of(now_s, status)
            if sample is None:
                continue
            samples = self._routes.get(name)
            if samples is None:
                samples = self._routes[name] = deque(maxlen=self._keep)
            samples.append(sample)
        self._forget(now_s)

    def _forget(self, now_s: float) -> None:
        horizon_s = now_s - self.window_s
        for samples in self._routes.values():
            while samples and samples[0].t_s < horizon_s:
                samples.popleft()

    def samples(self, route: str) -> list[Sample]:
        return list(self._routes.get(route, ()))

    def as_dict(self, now_s: float, since_s: float | None = None) -> dict[str, Any]:
        """The history as ``/status/history`` answers it: per route, one list
        per figure (``COLUMNS``), aligned by index; only samples newer than
        ``since_s`` when given (a page asks for what it has not seen)."""
        self._forget(now_s)
        routes: dict[str, dict[str, list[Any]]] = {}
        for name, samples in self._routes.items():
            chosen = [s for s in samples if since_s is None or s.t_s > since_s]
            routes[name] = {c: [getattr(s, c) for s in chosen] for c in COLUMNS}
        return {
            "interval_s": self.interval_s,
            "window_s": self.window_s,
            "now_s": round(now_s, 3),
            "routes": routes,
        }
