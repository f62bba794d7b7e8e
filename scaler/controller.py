"""The controller: every scaled route, one leader (or one per shard).

It gathers the routes to scale from two sources (``scaler.route_sources``)
and keeps one
``RouteLoop`` task per route:

- the config file: every route with a ``scaler:`` section;
- ``BacklogScaler`` resources in ``scaler.namespaces``, listed again at once
  when a watch reports one added, deleted or changed in spec, and every
  ``resync_s`` in any case. A resource wins over the config file for the same route; two
  resources for one route: the older one scales, the other is reported
  (``Active`` false, reason ``Conflict``). A changed spec (new generation)
  restarts that route's loop with the new settings.

Kubernetes access (kubeconfig or in-cluster) is needed for deployment targets,
BacklogScalers and leader election; a config of local targets only runs
without it. With access, only the Lease holder writes; standbys keep sampling
(their metrics stay meaningful) and take over when the Lease frees up.

With ``scaler.shards`` above 1 (``scaler.shards``), the routes are split
into shards, each with a Lease of its own, and a replica runs the loops of
the shards it holds and only those: replicas share the work. When a shard
is taken or handed over, the loops are brought in line at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading

from scaler.actuator import Actuator
from scaler.deployment import DeploymentActuator
from scaler.informer import DeploymentCache
from scaler.kube import Kube
from scaler.lease import LeaderElector
from scaler.local import LocalActuator
from scaler.metrics import ScalerMetrics
from scaler.resources import (
    emit_event,
    patch_status,
    watch_changes,
)
from scaler.route_loop import RouteLoop
from scaler.route_sources import RouteSources, Scaled, from_config
from scaler.shards import ShardedElection
from tidegate.errors import ConfigError
from tidegate.ledger.store import Store
from tidegate.settings import Settings
from tidegate.tasks import stop_tasks, wait_any

log = logging.getLogger(__name__)

WATCH_DEBOUNCE_S = 0.2


class Controller:
    def __init__(
        self,
        settings: Settings,
        config_path: str,
        store: Store,
        kube: Kube | None,
        metrics: ScalerMetrics,
        elector: LeaderElector | ShardedElection | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.store = store
        self.kube = kube
        self.metrics = metrics
        self.elector = elector
        self.loops: dict[str, tuple[Scaled, RouteLoop, asyncio.Task[None]]] = {}
        self.synced = False
        self.first_sync = asyncio.Event()
        """Set once the routes were loaded and their loops started."""
        self._said_idle = False
        self.caches: dict[str, DeploymentCache] = {}
        """One informer per namespace with scaled Deployments (``scaler.informer``)."""
        self._stopping = threading.Event()
        self._changed = asyncio.Event()
        """A resync is due: a watched resource changed, or shards moved."""
        if isinstance(elector, ShardedElection):
            elector.on_change = self._shards_changed
        self.sources = RouteSources(settings, kube, metrics, self.leads)
        """Which routes to scale, and whether a BacklogScaler is refused."""
        self.runner = store.runner(batched=True)
        """Every route loop's Redis reads and view writes go through it: the
        loops that step at the same moment (``scaler.phases`` gives a
        thousand routes a few slots per interval) share one round trip per
        Redis node."""

    def is_leader(self) -> bool:
        return self.elector.is_leader if self.elector else True

    def leads(self, route: str) -> bool:
        """Whether this replica writes for ``route``: it holds the Lease, or
        with shards, the Lease of the route's shard."""
        if isinstance(self.elector, ShardedElection):
            return self.elector.owns(route)
        return self.is_leader()

    def _shards_changed(self, held: set[int]) -> None:
        """Shards were taken or handed over: start and stop loops now."""
        self.metrics.leader.set(int(bool(held)))
        self.metrics.shards_held.set(len(held))
        self._changed.set()

    def _actuator(self, scaled: Scaled) -> Actuator:
        target = scaled.settings.target
        if target.kind == "local":
            return LocalActuator(self.config_path, scaled.route, target.upstream, target.app)
        if self.kube is None:
            raise ConfigError(
                [f"route {scaled.route}: a deployment target needs Kubernetes API access"]
            )
        namespace, name = target.namespace or "", target.name or ""  # validated as set
        return DeploymentActuator(self.kube, namespace, name, cache=self._cache(namespace))

    def _cache(self, namespace: str) -> DeploymentCache:
        """The namespace's Deployments informer, started on first use."""
        cache = self.caches.get(namespace)
        if cache is None:
            assert self.kube is not None
            cache = self.caches[namespace] = DeploymentCache(self.kube, namespace)
            threading.Thread(
                target=cache.run,
                args=(self._stopping,),
                name=f"deployments-{namespace}",
                daemon=True,  # blocked in a read until its watch times out
            ).start()
        return cache

    async def sync(self) -> None:
        """Bring the running loops in line with config and resources."""
        wanted = from_config(self.settings)
        resources = await self.sources.from_resources()
        if resources is None:  # listing failed: keep the resource loops running
            resources = {k: s for k, (s, _, _) in self.loops.items() if s.resource}
        for route, scaled in resources.items():
            if route in wanted:
                log.info("route %s: %s overrides the config file", route, scaled.source)
            wanted[route] = scaled
        if isinstance(self.elector, ShardedElection):  # only the shards held here
            wanted = {route: s for route, s in wanted.items() if self.leads(route)}
        for route in list(self.loops):
            scaled = self.loops[route][0]
            if route not in wanted or wanted[route].version != scaled.version:
                await self._stop(route)
        for route, scaled in wanted.items():
            if route not in self.loops:
                self._start(scaled)
        self.synced = True
        self.first_sync.set()

    def _start(self, scaled: Scaled) -> None:
        kube = self.kube
        loop = RouteLoop(
            scaled.route,
            scaled.settings,
            self._actuator(scaled),
            self.store,
            self.metrics,
            is_leader=functools.partial(self.leads, scaled.route),
            resource=scaled.resource,
            conditions=list(scaled.conditions),
            write_status=functools.partial(patch_status, kube) if kube else None,
            write_event=functools.partial(emit_event, kube) if kube else None,
            partitions=scaled.partitions,
            runner=self.runner,
        )
        log.info(
            "route %s: scaling %s (from %s)", scaled.route, loop.actuator.describe, scaled.source
        )
        self.runner.start()  # with the first loop (nothing when it runs)
        task = asyncio.create_task(loop.run(), name=f"scale-{scaled.route}")
        self.loops[scaled.route] = (scaled, loop, task)

    async def _stop(self, route: str) -> None:
        scaled, loop, task = self.loops.pop(route)
        await stop_tasks([task])
        await loop.actuator.close()
        if not self.loops:
            await self.runner.close()
        log.info("route %s: stopped scaling (%s)", route, scaled.source)

    def _watch(self, changed: asyncio.Event, stopping: threading.Event) -> None:
        """One thread per watched namespace, waking the loop on a change."""
        if self.kube is None:
            return
        loop = asyncio.get_running_loop()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(changed.set)

        for namespace in self.settings.scaler.namespaces:
            threading.Thread(
                target=watch_changes,
                args=(self.kube, namespace, wake, stopping),
                name=f"watch-{namespace}",
                daemon=True,  # blocked in a read until its watch times out
            ).start()

    async def run(self, stop: asyncio.Event) -> None:
        """Sync now, then on every watched change (debounced) and every resync_s."""
        tasks: list[asyncio.Task[None]] = []
        if self.elector:
            tasks.append(asyncio.create_task(self.elector.run(), name="lease"))
        changed, stopping = self._changed, threading.Event()
        self._watch(changed, stopping)
        try:
            while not stop.is_set():
                changed.clear()
                await self.sync()
                if not self.loops and not self._said_idle:
                    self._said_idle = True
                    log.warning(
                        "no route to scale: give a route a scaler: section, or list "
                        "scaler.namespaces to watch for BacklogScaler resources"
                    )
                await wait_any((stop, changed), self.settings.scaler.resync_s)
                if changed.is_set() and not stop.is_set():
                    await asyncio.sleep(WATCH_DEBOUNCE_S)  # one sync for a burst of changes
        finally:
            stopping.set()
            self._stopping.set()
            for route in list(self.loops):
                await self._stop(route)
            await stop_tasks(tasks)
            if self.elector:
                await self.elector.release()
