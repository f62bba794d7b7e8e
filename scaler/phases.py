"""When each route's loop steps: at a phase of its interval drawn from its name.

A thousand routes stepping in the same millisecond would send their Redis
reads and API calls in one burst; stepping an interval after their own last
step, they drift apart and each read goes alone. A fixed phase per route, in
a few slots, does both: the load spreads over the interval, and the routes of
one slot wake in the same turn of the event loop and share a round trip.
"""

from __future__ import annotations

import math
import zlib

PHASE_SLOTS = 10
"""Routes step in this many slots of their interval."""


def phase_s(route: str, interval_s: float) -> float:
    """Where in its interval a route's loop steps: one of ``PHASE_SLOTS``
    slots, drawn from the route's name (CRC-32). A thousand routes spread
    their Redis reads and API calls over the interval instead of sending them
    in the same millisecond, while the routes of one slot step together and
    share their round trips (the controller's batched ``Runner``); a route
    keeps its slot across restarts."""
    return (zlib.crc32(route.encode()) % PHASE_SLOTS) / PHASE_SLOTS * interval_s


def next_tick(after: float, phase: float, interval_s: float) -> float:
    """The first time ``phase + k * interval_s`` (k whole) after ``after``."""
    return phase + (math.floor((after - phase) / interval_s) + 1) * interval_s
