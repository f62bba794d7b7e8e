"""Workers' liveness and how busy each worker is: one record per worker.

The same records serve any group of processes that needs to know who is
alive: the scaler replicas sharing shards of routes beat here too, under a
group name no route can have (``scaler.shards``).

``tg:{route}:workers`` is a hash with one field per worker process (its
consumer name), ``"<jobs in flight>:<unix ms>"``. A worker writes its field
every few seconds and as soon as it goes idle or busy, and removes it on a
clean exit. A field older than ``RECORD_TTL_S`` is a worker that is gone (a
hung or killed one): readers skip it and drop it.

Two readers, each one script call (``workers.lua``: the fresh records, the
stale ones dropped in the same call): ``tidegate worker --check`` (a worker
of this host is alive: ``first_alive``) and the scaler (``busy``: how many
workers have a job in flight, and which pods are idle, before it scales in;
its calls share round trips with the other routes' through a batched
``Runner``).
"""

from __future__ import annotations

from tidegate.keys import RouteKeys
from tidegate.ledger.calls import Workers, unix_ms
from tidegate.ledger.client import Connection, redis_errors
from tidegate.ledger.runner import Runner

RECORD_TTL_S = 15.0
"""A worker's field this old is a worker that is gone."""


class Liveness:
    """Who is alive and how busy: the records of one group of processes."""

    def __init__(self, redis: Connection) -> None:
        self._redis = redis

    async def refresh(
        self,
        route: str,
        consumer: str,
        in_flight: int = 0,
        *,
        now_s: float | None = None,
    ) -> None:
        with redis_errors("refreshing the liveness record"):
            await self._redis.hset(
                RouteKeys(route).workers, consumer, f"{in_flight}:{unix_ms(now_s)}"
            )

    async def clear(self, route: str, consumer: str) -> None:
        with redis_errors("clearing the liveness record"):
            await self._redis.hdel(RouteKeys(route).workers, consumer)

    async def busy(
        self,
        route: str,
        max_age_s: float = RECORD_TTL_S,
        *,
        runner: Runner | None = None,
        now_s: float | None = None,
    ) -> dict[str, int]:
        """Jobs in flight per worker process that reported within ``max_age_s``;
        older fields (workers gone without a goodbye) are removed."""
        found = Workers(
            route=RouteKeys(route),
            now_ms=unix_ms(now_s),
            max_age_ms=int(max_age_s * 1000),
        )
        with redis_errors("reading the workers' records"):
            return await (runner or Runner(self._redis)).run(found)

    async def first_alive(self, route: str, consumer_prefix: str) -> str | None:
        """A live worker whose consumer name starts with ``consumer_prefix``
        (``host-``: one on this host), or None."""
        for consumer in await self.busy(route):
            if consumer.startswith(consumer_prefix):
                return consumer
        return None
