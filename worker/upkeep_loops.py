"""A consumer's upkeep beside its jobs: heartbeat, liveness, reconcile and trim.

Loops that run as long as the consumer does, each on its own period: the
heartbeat keeps the entries of running jobs from looking abandoned; the
liveness record says the worker is alive and how busy (``tidegate worker
--check``, and the scaler scales in idle pods first); every worker now and
then reconciles overdue jobs and trims the route's streams (both safe to run
in many places at once). Redis being away only delays them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tidegate.errors import RedisUnavailable
from tidegate.keys import RouteKeys
from tidegate.ledger import Ledger
from tidegate.settings import RouteSettings
from tidegate.tasks import stop_if_cancelled
from worker.group_reader import GroupReader
from worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)

ALIVE_EVERY_S = 5.0
BUSY_REPORT_MIN_S = 1.0
"""Going idle or busy is reported at once, but at most once per this long."""
MAINTAIN_EVERY_S = 5.0


class Upkeep:
    """The loops ``Consumer`` runs in the background; the attributes are the consumer's."""

    route: RouteSettings
    ledger: Ledger
    name: str
    parts: tuple[RouteKeys, ...]
    readers: list[GroupReader]
    metrics: WorkerMetrics
    in_flight: dict[asyncio.Task[None], tuple[int, str]]
    _busy_changed: asyncio.Event

    async def _heartbeat(self) -> None:
        """Keep the entries of running jobs from looking abandoned.

        XCLAIM of our own entries with JUSTID resets their idle time, so a job
        that runs longer than the visibility timeout is not reclaimed by
        another worker while this one is still on it.
        """
        while True:
            await asyncio.sleep(self.readers[0].keep_every_s)
            try:
                for partition, reader in enumerate(self.readers):
                    held = [entry for p, entry in self.in_flight.values() if p == partition]
                    await reader.group.keep(held)
            except RedisUnavailable as e:
                stop_if_cancelled(e)
                log.warning("heartbeat failed (%s); jobs may be reclaimed elsewhere", e)

    async def _alive(self) -> None:
        """Refresh this process's record: alive (``tidegate worker --check``) and
        how busy (the scaler scales in idle pods first).

        A record older than ``tidegate.ledger.liveness.RECORD_TTL_S`` counts as gone, so a hung
        or killed worker disappears on its own. It is refreshed every
        ``ALIVE_EVERY_S``, and as soon as the worker goes idle or busy (at most
        once per ``BUSY_REPORT_MIN_S``: at low load that flips with every job).
        """
        while True:
            self._busy_changed.clear()
            try:
                await self.ledger.store.liveness.refresh(
                    self.route.name, self.name, len(self.in_flight)
                )
            except RedisUnavailable as e:  # out of memory included: try again later
                stop_if_cancelled(e)
            await asyncio.sleep(BUSY_REPORT_MIN_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._busy_changed.wait(), ALIVE_EVERY_S - BUSY_REPORT_MIN_S)

    async def _maintain(self) -> None:
        """Reconcile overdue jobs and trim the route's streams, now and then.

        Every worker does it; both are safe to run in many places at once (a
        job expires once; trimming to the same bound twice trims nothing).
        """
        route = self.route.name
        while True:
            await asyncio.sleep(MAINTAIN_EVERY_S)
            try:
                actions = await self.ledger.reconcile(route)
                trimmed = await self.ledger.trim(route)
            except RedisUnavailable as e:
                stop_if_cancelled(e)
                continue
            for action, count in actions.items():
                self.metrics.reconciled.labels(route, action).inc(count)
                log.warning("%s %d job(s) of route %s past their deadline", action, count, route)
            log.debug("trimmed %s", trimmed)
