"""The small records beside the jobs, each a typed store bound to the
process's connection (``store.Store`` makes them; a part never sees the
connection they hold).

Each method is the module function of the same name (``throttle``,
``liveness``, ``history``, ``scaler_view``) with the connection filled in:
those modules keep the Redis commands, their errors and their docstrings;
these classes only decide who may call them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tidegate.keys import Partitioned
from tidegate.ledger import history, liveness, scaler_view, throttle
from tidegate.ledger.client import Connection
from tidegate.ledger.runner import Runner
from tidegate.scaler_view import ScalerView
from tidegate.throttle import Throttle


class _Bound:
    def __init__(self, connection: Connection) -> None:
        self._redis = connection


class Throttles(_Bound):
    """A route's throttle: set and lifted by the scaler, read by gateways."""

    async def read(self, route: str | Partitioned) -> Throttle | None:
        return await throttle.read(self._redis, route)

    async def apply(
        self, route: str | Partitioned, value: Throttle, ttl_s: float, announce: bool
    ) -> None:
        await throttle.apply(self._redis, route, value, ttl_s, announce)

    async def lift(self, route: str | Partitioned) -> None:
        await throttle.lift(self._redis, route)


class Liveness(_Bound):
    """Who is alive and how busy: a record per worker (or scaler) in a hash."""

    async def refresh(
        self, route: str, consumer: str, in_flight: int = 0, *, now_s: float | None = None
    ) -> None:
        await liveness.refresh(self._redis, route, consumer, in_flight, now_s=now_s)

    async def clear(self, route: str, consumer: str) -> None:
        await liveness.clear(self._redis, route, consumer)

    async def busy(
        self,
        route: str,
        max_age_s: float = liveness.RECORD_TTL_S,
        *,
        runner: Runner | None = None,
        now_s: float | None = None,
    ) -> dict[str, int]:
        return await liveness.busy(self._redis, route, max_age_s, runner=runner, now_s=now_s)

    async def first_alive(self, route: str, consumer_prefix: str) -> str | None:
        return await liveness.first_alive(self._redis, route, consumer_prefix)


class History(_Bound):
    """A route's arrival history, for prediction."""

    async def load(self, route: str, keep: int, bucket_s: float, now_s: float) -> list[float]:
        return await history.load(self._redis, route, keep, bucket_s, now_s)

    async def store(self, route: str, buckets: Sequence[tuple[float, float]], keep: int) -> None:
        await history.store(self._redis, route, buckets, keep)


class Views(_Bound):
    """What the scaler last decided per route, for gateways and operators."""

    async def publish(
        self,
        route: str,
        view: ScalerView,
        interval_s: float,
        *,
        runner: Runner | None = None,
        encoded: Mapping[str, str] | None = None,
    ) -> None:
        await scaler_view.publish(
            self._redis, route, view, interval_s, runner=runner, encoded=encoded
        )

    async def read(self, route: str) -> ScalerView | None:
        return await scaler_view.read(self._redis, route)

    @staticmethod
    def encode(view: ScalerView) -> dict[str, str]:
        return scaler_view.encode(view)
