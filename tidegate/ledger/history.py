"""A route's arrival history in Redis, for prediction (``scaler.predict``).

The leader appends each closed bucket of the predictor (``start:rate``, the
start in unix seconds) to
``tg:{route}:arrivals`` and trims the list to what the predictor keeps; a
scaler that starts, or becomes leader, reads it back, so the pattern learned
survives restarts and failovers. A bucket that cannot be written is lost (the
pattern holds with a gap); one that cannot be read is learned again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tidegate.keys import RouteKeys
from tidegate.ledger.client import Connection, read_again_if_closed, redis_errors, text


class History:
    """A route's arrival history, for prediction."""

    def __init__(self, redis: Connection) -> None:
        self._redis = redis

    async def load(self, route: str, keep: int, bucket_s: float, now_s: float) -> list[float]:
        """The rates of the last ``keep`` buckets up to ``now_s`` (unix s), oldest
        first, one per bucket: a bucket nobody stored (no leader then, Redis
        away) takes the rate before it, so the phase of the pattern stays true."""
        raw: Any = await read_again_if_closed(
            "reading the arrival history",
            lambda: self._redis.lrange(RouteKeys(route).arrivals, -keep, -1),
        )
        stored: list[tuple[float, float]] = []
        for item in raw:
            head, _, tail = text(item).partition(":")
            try:
                stored.append((float(head), float(tail)))
            except ValueError:
                continue  # not ours: skipped
        if not stored:
            return []
        first = stored[0][0]
        last_index = round((stored[-1][0] - first) / bucket_s)
        total = max(int((now_s - first) // bucket_s), last_index + 1)
        series: list[float | None] = [None] * total
        for began, value in stored:
            index = round((began - first) / bucket_s)
            if 0 <= index < total:
                series[index] = value
        series = series[-keep:]
        out: list[float] = []
        last = 0.0
        for slot in series:
            last = last if slot is None else slot
            out.append(last)
        return out

    async def store(self, route: str, buckets: Sequence[tuple[float, float]], keep: int) -> None:
        key = RouteKeys(route).arrivals
        with redis_errors("storing the arrival history"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, *(f"{start:.0f}:{rate:.3f}" for start, rate in buckets))
                pipe.ltrim(key, -keep, -1)
                await pipe.execute()
