"""What a part holds instead of a Redis connection: the ledger's front door.

The parts (``gateway``, ``worker``, ``scaler``) and the shell never hold a
connection. ``Store.open`` connects for the configured topology and keeps the
connection to itself (a private attribute: ruff's SLF001 refuses a part that
reaches for it, and import-linter refuses a part that imports
``tidegate.ledger.client``, where connections are made); what a part can do
with Redis is what the store hands out, each typed:

- ``jobs(routes)``: the ``Ledger`` of the routes' jobs (commands, queries,
  upkeep, callbacks);
- ``throttle``, ``liveness``, ``history``, ``views``: the small records
  beside the jobs, each a class bound to the connection in its record's
  module (``throttle_record``, ``liveness``, ``history``, ``view_record``);
- ``group(...)``, ``subscription(...)``, ``runner()``: a worker's consumer
  group, a notification channel, a batch of script calls;
- ``sample(...)``, ``routes_status(...)``, ``ping()``, ``probe_write()``:
  what the scaler and the operator read.

A ``Ledger`` made here (or on a connection in the tests) reaches its store
as ``ledger.store``: a worker that holds only its ledger takes its consumer
group and liveness record from there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from tidegate.keys import Partitioned
from tidegate.ledger import health
from tidegate.ledger.backlog import Backlog, Counters, sampled
from tidegate.ledger.client import Connection, connect
from tidegate.ledger.groups import ConsumerGroup
from tidegate.ledger.history import History
from tidegate.ledger.liveness import Liveness
from tidegate.ledger.pubsub import Subscription
from tidegate.ledger.route_status import RouteStatus, routes_status
from tidegate.ledger.runner import Runner
from tidegate.ledger.throttle_record import Throttles
from tidegate.ledger.view_record import Views
from tidegate.settings import RedisSettings, RouteSettings, Settings

if TYPE_CHECKING:
    from tidegate.ledger import Ledger

__all__ = ["RouteStatus", "Store"]


class Store:
    """One connection's worth of Redis, for one process (see the module)."""

    def __init__(self, connection: Connection) -> None:
        self._redis = connection
        self.throttle = Throttles(connection)
        self.liveness = Liveness(connection)
        self.history = History(connection)
        self.views = Views(connection)

    @classmethod
    def open(cls, settings: RedisSettings, *, blocking_reads_s: float = 0.0) -> Store:
        """Connect for the configured mode (standalone, cluster, Sentinel).
        ``blocking_reads_s``: the longest blocking read (XREADGROUP BLOCK)
        this process sends, added to the socket timeout."""
        return cls(connect(settings, extra_timeout_s=blocking_reads_s))

    async def aclose(self) -> None:
        await self._redis.aclose()

    def jobs(
        self,
        routes: Sequence[RouteSettings],
        *,
        batched: bool = False,
        admission_batch_max: int = 0,
    ) -> Ledger:
        from tidegate.ledger import Ledger  # the ledger's modules import this one

        return Ledger(self._redis, routes, batched=batched, admission_batch_max=admission_batch_max)

    def runner(self, *, batched: bool = False) -> Runner:
        """Script calls, sent one by one or (``batched``) coalesced per turn."""
        return Runner(self._redis, batched=batched)

    def group(self, stream: str, group: str, consumer: str) -> ConsumerGroup:
        return ConsumerGroup(self._redis, stream, group, consumer)

    def subscription(
        self,
        channels: Sequence[str],
        *,
        on_message: Callable[[str, bytes], Awaitable[None] | None],
        on_subscribed: Callable[[], Awaitable[None]],
        on_idle: Callable[[], Awaitable[None]] | None = None,
        idle_s: float = 5.0,
        name: str = "subscription",
    ) -> Subscription:
        return Subscription(
            self._redis,
            channels,
            on_message=on_message,
            on_subscribed=on_subscribed,
            on_idle=on_idle,
            idle_s=idle_s,
            name=name,
        )

    async def sample(
        self, route: str | Partitioned, *, runner: Runner | None = None
    ) -> tuple[Backlog, Counters]:
        """A route's backlog and counters (``backlog.sampled``)."""
        return await sampled(self._redis, route, runner=runner)

    async def routes_status(self, settings: Settings) -> dict[str, RouteStatus]:
        return await routes_status(self._redis, settings)

    async def ping(self, *, load_scripts: bool = False) -> None:
        await health.ping(self._redis, load_scripts=load_scripts)

    async def probe_write(self) -> None:
        await health.probe_write(self._redis)
