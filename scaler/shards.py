"""Routes shared across scaler replicas: one Lease per shard of routes.

With ``scaler.shards: S`` (S > 1) a route belongs to shard
``crc32(route) % S``, and each shard is led through a Lease of its own,
``LEASE_NAME-N``, with the protocol of ``scaler.lease`` (one holder at a
time, takeover only after a whole lease duration without renewal, timed by
the candidate's own clock, resourceVersion on every write). A replica runs
the control loops of the shards it holds and no others, so adding a replica
adds capacity.

Balance: every ``retry_period_s`` each replica beats in Redis, in the
liveness records workers use (``tidegate.ledger.liveness``, group
``MEMBERS``; a replica silent for ``renew_deadline_s`` is gone) and holds at most its fair share,
``ceil(S / replicas alive)``: it renews what it holds, gives up what is
beyond its share (its highest in its own order of preference, released so
another takes it within a retry period), and takes free or expired shards
while below it. Each replica prefers the shards from its own place in the
ring (CRC-32 of its identity), so replicas starting together rarely race
for the same Lease; when they do, the resourceVersion makes one win.

A replica that dies stops beating; by the time its Leases expire (one lease
duration after its last renewal) it has left the members, the others' fair
share has grown, and they take its shards. While Redis is unreachable the
membership is unknown: a replica then renews what it holds and takes
nothing new.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
import zlib
from collections.abc import Callable

from scaler.kube import Kube, KubeError
from scaler.lease import LeaderElector, LeaseSettings
from tidegate.errors import RedisUnavailable
from tidegate.ledger.store import Store
from tidegate.tasks import stop_if_cancelled

log = logging.getLogger(__name__)

MEMBERS = "_scalers"
"""The scaler replicas' liveness group: ``tg:{_scalers}:workers`` (no route
can be named so: route names are [a-z0-9-])."""


def shard_of(route: str, shards: int) -> int:
    return zlib.crc32(route.encode()) % shards


def lease_names(name: str, shards: int) -> list[str]:
    """The Leases of ``shards`` shards (one shard: the plain name)."""
    return [name] if shards == 1 else [f"{name}-{n}" for n in range(shards)]


class ShardedElection:
    """Which shards of routes this replica leads."""

    def __init__(
        self,
        kube: Kube,
        lease: LeaseSettings,
        shards: int,
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_s: Callable[[], float] = time.time,
        on_change: Callable[[set[int]], None] | None = None,
    ) -> None:
        self.settings = lease
        self.shards = shards
        self.liveness = store.liveness
        self.wall_s = wall_s
        self.on_change = on_change
        self.electors = [
            LeaderElector(kube, dataclasses.replace(lease, name=name), clock=clock)
            for name in lease_names(lease.name, shards)
        ]
        start = zlib.crc32(lease.identity.encode()) % shards
        self.order = [(start + k) % shards for k in range(shards)]
        """This replica's order of preference among the shards."""
        self.members: list[str] = []
        """The replicas alive at the last beat."""
        self._held: set[int] = set()

    @property
    def held(self) -> set[int]:
        """The shards this replica leads now (renew deadlines checked)."""
        return {n for n, e in enumerate(self.electors) if e.is_leader}

    @property
    def is_leader(self) -> bool:
        """Leads at least one shard."""
        return any(e.is_leader for e in self.electors)

    def owns(self, route: str) -> bool:
        return self.electors[shard_of(route, self.shards)].is_leader

    async def _beat(self) -> list[str] | None:
        try:
            now_s = self.wall_s()
            await self.liveness.refresh(MEMBERS, self.settings.identity, now_s=now_s)
            alive = await self.liveness.busy(MEMBERS, self.settings.renew_deadline_s, now_s=now_s)
            return sorted(alive)
        except RedisUnavailable as e:
            stop_if_cancelled(e)
            log.warning("shards: membership unknown (%s); holding what is held", e)
            return None

    async def step(self) -> set[int]:
        """One round: beat, give up what is beyond the fair share, renew the
        rest, take free shards while below it; the shards held after."""
        alive = await self._beat()
        held = [n for n in self.order if self.electors[n].is_leader]
        if alive is None:
            fair = len(held)
        else:
            self.members = alive
            fair = math.ceil(self.shards / max(1, len(alive)))
        for n in held[fair:]:
            log.info("shard %d: beyond this replica's share (%d); handing it over", n, fair)
            await self.electors[n].release()
        count = min(len(held), fair)
        for n in self.order:
            elector = self.electors[n]
            mine = elector.is_leader
            want = mine or count < fair
            try:
                got = await elector.attempt(want=want)
            except KubeError as e:
                stop_if_cancelled(e)
                log.warning("%s", e)
                continue
            if got and not mine:
                count += 1
        now_held = self.held
        if now_held != self._held:
            log.warning(
                "shards: leading %s of %d (%d replica(s) alive)",
                sorted(now_held) or "none",
                self.shards,
                len(self.members),
            )
            self._held = now_held
            if self.on_change:
                self.on_change(now_held)
        return now_held

    async def run(self) -> None:
        """Step every ``retry_period_s`` until cancelled."""
        while True:
            await self.step()
            await asyncio.sleep(self.settings.retry_period_s)

    async def release(self) -> None:
        """On shutdown: every shard handed over, and out of the members."""
        for elector in self.electors:
            await elector.release()
        try:
            await self.liveness.clear(MEMBERS, self.settings.identity)
        except RedisUnavailable as e:
            log.warning("shards: %s (the record will age out)", e)
