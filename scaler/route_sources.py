"""Which routes to scale: the config file's, and the BacklogScalers'.

- ``from_config``: every route with a ``scaler:`` section;
- ``RouteSources.from_resources``: the valid ``BacklogScaler`` resources in
  ``scaler.namespaces``, the oldest first. One whose spec is invalid, or
  whose route an older one scales already, is reported on its status
  (``Active`` false, reason ``InvalidSpec`` or ``Conflict``) by the replica
  that leads its route, once per generation, not at every resync.

The controller (``scaler.controller``) merges both (a resource wins) and
keeps one loop per route.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scaler.kube import Kube, KubeError
from scaler.metrics import ScalerMetrics
from scaler.resources import (
    ResourceRef,
    condition,
    list_resources,
    merge_conditions,
    now_rfc3339,
    parse,
    patch_status,
)
from tidegate.settings import ScalerSettings, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scaled:
    """One route to scale, and where its settings came from."""

    route: str
    settings: ScalerSettings
    resource: ResourceRef | None = None
    conditions: tuple[Any, ...] = ()
    partitions: int = 1
    """The route's partitions (its backlog and throttle span them all)."""

    @property
    def source(self) -> str:
        return self.resource.describe if self.resource else "the config file"

    @property
    def version(self) -> tuple[Any, ...]:
        """Changes when the loop must restart (new settings)."""
        if self.resource:
            return (self.resource.uid, self.resource.generation)
        return ("config",)


def from_config(settings: Settings) -> dict[str, Scaled]:
    return {
        r.name: Scaled(r.name, r.scaler, partitions=r.partitions)
        for r in settings.routes
        if r.scaler is not None
    }


class RouteSources:
    """The BacklogScalers a controller scales by (see the module)."""

    def __init__(
        self,
        settings: Settings,
        kube: Kube | None,
        metrics: ScalerMetrics,
        leads: Callable[[str], bool],
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.metrics = metrics
        self.leads = leads
        """Whether this replica writes for a route (it leads it)."""

    async def from_resources(self) -> dict[str, Scaled] | None:
        """Valid BacklogScalers by route; None when listing failed (keep what runs)."""
        if self.kube is None or not self.settings.scaler.namespaces:
            return {}
        found: dict[str, Scaled] = {}
        try:
            objects = [
                obj
                for ns in self.settings.scaler.namespaces
                for obj in await list_resources(self.kube, ns)
            ]
        except KubeError as e:
            self.metrics.api_errors.labels("", str(e.status)).inc()
            log.warning("%s", e)
            return None
        parsed = [(parse(o), o) for o in objects if o]
        parsed.sort(key=lambda po: (po[0].ref.created, po[0].ref.namespace, po[0].ref.name))
        for p, obj in parsed:
            status = obj.get("status") or {}
            old = list(status.get("conditions") or [])
            if p.error or p.settings is None or p.route is None:
                await self._reject(p.ref, "InvalidSpec", p.error or "invalid spec", status)
                continue
            if p.route in found:
                first = found[p.route].source
                message = f"route {p.route} is scaled by {first}"
                await self._reject(p.ref, "Conflict", message, status)
                continue
            configured = next((r for r in self.settings.routes if r.name == p.route), None)
            partitions = p.partitions or (configured.partitions if configured else 1)
            found[p.route] = Scaled(p.route, p.settings, p.ref, tuple(old), partitions)
        return found

    async def _reject(
        self, ref: ResourceRef, reason: str, message: str, status: dict[str, Any]
    ) -> None:
        old = list(status.get("conditions") or [])
        wanted = [condition("Active", False, reason, message)]
        reported = [{k: c.get(k) for k in wanted[0]} for c in old] == wanted
        if reported and status.get("observedGeneration") == ref.generation:
            return  # said already: not again at every resync
        log.warning("%s: %s", ref.describe, message)
        if self.kube is None or not self.leads(ref.name):
            return
        conditions = merge_conditions(old, wanted, now_rfc3339())
        try:
            await patch_status(
                self.kube, ref, {"observedGeneration": ref.generation, "conditions": conditions}
            )
        except KubeError as e:
            log.warning("%s", e)
