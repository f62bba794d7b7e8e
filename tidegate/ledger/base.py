"""What every ledger module shares: the connection, the routes, the runner.

``Ledger`` (``tidegate.ledger``) is assembled from ``Commands`` (writes that
move a job), ``Queries`` (reads) and ``Upkeep`` (promotion, reconciliation,
trimming, replay), each in its own module on this base.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from tidegate.errors import JobNotFound
from tidegate.keys import PartitionChooser, RouteKeys, id_tag, job_keys, new_job_id, parts_of
from tidegate.ledger.admission import AdmissionQueue
from tidegate.ledger.client import Connection
from tidegate.ledger.quota_leases import QuotaLeases
from tidegate.ledger.runner import Runner
from tidegate.settings import RouteSettings

if TYPE_CHECKING:
    from tidegate.ledger.store import Store

TERMINAL_STATES = frozenset({"succeeded", "cancelled", "dead_lettered", "compensated", "expired"})


class LedgerBase:
    def __init__(
        self,
        redis: Connection,
        routes: Sequence[RouteSettings],
        *,
        batched: bool = False,
        admission_batch_max: int = 0,
    ) -> None:
        """``batched``: script calls are coalesced with concurrent ones (a worker);
        ``admission_batch_max``: admissions are coalesced, that many per round
        trip at most (the gateway); 0 admits each on its own."""
        self._redis = redis
        self.routes: Mapping[str, RouteSettings] = {r.name: r for r in routes}
        self.runner = Runner(redis, batched=batched)
        self._partitions = PartitionChooser()
        self.quota_leases = QuotaLeases()
        """Quota tokens this process holds for proxy routes (``take_quota``)."""
        self.admissions = (
            AdmissionQueue(redis, batch_max_size=admission_batch_max)
            if admission_batch_max
            else None
        )

    @cached_property
    def store(self) -> Store:
        """The rest of Redis on this ledger's connection (``ledger.store``):
        a worker that holds its ledger takes its consumer group and its
        liveness record from there."""
        from tidegate.ledger.store import Store  # the store makes ledgers

        return Store(self._redis)

    def open(self) -> None:
        """Start the flusher tasks of batched calls (call within the event loop)."""
        self.runner.start()
        if self.admissions:
            self.admissions.start()

    async def close(self) -> None:
        """Stop the flushers; calls still queued fail with RedisUnavailable."""
        await self.runner.close()
        if self.admissions:
            await self.admissions.close()

    def new_job_id(
        self, route: RouteSettings, tenant: str = "", idempotency_key: str | None = None
    ) -> str:
        """An id for a new job of the route, naming the partition it goes to
        (``keys.PartitionChooser``: by Idempotency-Key, else round-robin)."""
        return new_job_id(self._partitions.tag(route, tenant, idempotency_key or ""))

    def _route(self, job_id: str) -> tuple[RouteSettings, RouteKeys]:
        """A job's route and the keys of its partition; JobNotFound for an id
        that is malformed or names no configured route."""
        keys = job_keys(job_id)
        route = self.routes.get(keys.route) if keys else None
        if route is None or keys is None:
            raise JobNotFound(f"no job {job_id}")
        return route, keys

    def _job(self, job_id: str, route: str) -> tuple[RouteSettings, RouteKeys]:
        """The route and partition keys of a job read from a route's stream
        (its id's tag among the route's partitions; no parsing on this path)."""
        settings = self.routes[route]
        tag = id_tag(job_id)
        for keys in parts_of(settings):
            if keys.tag == tag:
                return settings, keys
        return settings, RouteKeys(route)
