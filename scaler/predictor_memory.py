"""A predictor's memory: the route's arrival history, kept in Redis.

With ``predict: periodic`` the policy learns a repeating arrival pattern
(``scaler.predict``). The leader stores each bucket the predictor closes
(``tidegate.ledger.history``); a scaler that starts, or becomes leader, loads
them once, so the pattern survives restarts and failovers. Redis away: the
load is tried again next step, a bucket that cannot be stored is a gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from scaler.predict import PeriodicPredictor
from tidegate.errors import RedisUnavailable
from tidegate.ledger.store import Store
from tidegate.tasks import stop_if_cancelled


class PredictorMemory:
    def __init__(
        self,
        route: str,
        predictor: PeriodicPredictor | None,
        store: Store,
        clock: Callable[[], float],
    ) -> None:
        self.route = route
        self.predictor = predictor
        self.store = store
        self.clock = clock
        """The loop's clock: bucket starts are on it."""
        self._loaded = False

    async def load(self) -> None:
        """Once: the arrival history the predictor learns from."""
        predictor = self.predictor
        if predictor is None or self._loaded:
            return
        try:
            bucket_s = predictor.settings.bucket_s
            found = await self.store.history.load(self.route, predictor.keep, bucket_s, time.time())
            predictor.load(found)
        except RedisUnavailable as e:
            stop_if_cancelled(e)
            return  # tried again next step
        self._loaded = True

    async def keep(self, leading: bool) -> None:
        """The leader keeps the buckets the predictor closed; others drop them."""
        predictor = self.predictor
        if predictor is None or not predictor.closed:
            return
        closed, predictor.closed = predictor.closed, []
        if not leading:
            return
        to_wall = time.time() - self.clock()  # bucket starts are on the loop's clock
        wall = [(start + to_wall, rate) for start, rate in closed]
        try:
            await self.store.history.store(self.route, wall, predictor.keep)
        except RedisUnavailable as e:
            stop_if_cancelled(e)
