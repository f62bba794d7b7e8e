"""Leader election with a ``coordination.k8s.io/v1`` Lease.

Several scaler replicas run; only the one holding the Lease writes (scale,
status, events, throttle). The protocol follows client-go's leader election:

- every ``retry_period_s`` each candidate reads the Lease; the holder renews
  it (``renewTime``), the others wait;
- a candidate may take the Lease over only when its record (holder, renew
  time, transitions) has not changed for ``lease_duration_s`` as timed by the
  candidate's own clock, never by comparing clocks across machines;
- every write carries the resourceVersion just read, so two candidates racing
  for an expired Lease cannot both win (the loser gets 409);
- a leader that has not renewed within ``renew_deadline_s`` stops writing at
  once: ``is_leader`` checks the deadline each time it is asked, so even a
  stalled loop cannot keep a stale leadership; and a leader that finds
  another holder drops it immediately;
- on shutdown the leader releases the Lease (empty holder), so a standby
  takes over within one retry period instead of a whole lease duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scaler.kube import Kube, KubeError
from tidegate.tasks import stop_if_cancelled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


def micro_time(when: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        settings: LeaseSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.on_change = on_change
        self._renewed_at: float | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._was_leader = False
        self.holder: str | None = None
        """The holder seen in the last read of the Lease."""

    @property
    def is_leader(self) -> bool:
        renewed = self._renewed_at
        return renewed is not None and self.clock() - renewed < self.settings.renew_deadline_s

    @property
    def _what(self) -> str:
        return f"lease {self.settings.namespace}/{self.settings.name}"

    def _body(self, resource_version: str | None, spec: dict[str, Any]) -> Any:
        s = self.settings
        metadata = {"name": s.name, "namespace": s.namespace}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def _held(self, acquired: str, transitions: int) -> dict[str, Any]:
        """The spec of a Lease this candidate holds, renewed now."""
        return {
            "holderIdentity": self.settings.identity,
            "leaseDurationSeconds": max(1, round(self.settings.duration_s)),
            "acquireTime": acquired,
            "renewTime": micro_time(self.wall()),
            "leaseTransitions": transitions,
        }

    async def attempt(self, *, want: bool = True) -> bool:
        """One try to acquire or renew; True when this candidate holds the Lease.

        ``want=False``: only watch it. A candidate that does not want the
        Lease now (it holds its fair share of shards) still times the
        holder's renewals, so that once it wants it, an expired Lease is
        taken at once instead of after another whole duration."""
        s, api = self.settings, self.kube.coordination
        now = self.clock()
        try:
            lease: Any = await self.kube.call(
                f"reading {self._what}", api.read_namespaced_lease, s.name, s.namespace
            )
        except KubeError as e:
            if e.status != 404 or not want:
                if e.status == 404:
                    return False
                raise
            try:
                await self.kube.call(
                    f"creating {self._what}",
                    api.create_namespaced_lease,
                    s.namespace,
                    self._body(None, self._held(micro_time(self.wall()), 0)),
                )
            except KubeError as e2:
                if e2.status == 409:  # another candidate created it first
                    return False
                raise
            self._renewed_at, self.holder = now, s.identity
            return True

        spec = lease.spec
        holder = spec.holder_identity or None
        self.holder = holder
        record = (holder, spec.renew_time, spec.lease_transitions)
        if record != self._observed:
            self._observed, self._observed_at = record, now
        if holder and holder != s.identity:
            duration = spec.lease_duration_seconds or s.duration_s
            if now - self._observed_at < duration:
                self._renewed_at = None  # someone else leads: stop writing at once
                return False
            if not want:
                return False
            log.info("%s: holder %s stopped renewing; taking over", self._what, holder)
        elif not holder and not want:
            return False
        mine = holder == s.identity
        acquired = spec.acquire_time if mine and spec.acquire_time else self.wall()
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        try:
            await self.kube.call(
                f"renewing {self._what}" if mine else f"acquiring {self._what}",
                api.replace_namespaced_lease,
                s.name,
                s.namespace,
                self._body(
                    lease.metadata.resource_version, self._held(micro_time(acquired), transitions)
                ),
            )
        except KubeError as e:
            if e.status == 409:  # changed under us: read again next time
                return False
            raise
        self._renewed_at, self.holder = now, s.identity
        return True

    def _report(self) -> None:
        leading = self.is_leader
        if leading != self._was_leader:
            self._was_leader = leading
            log.warning(
                "%s: %s", self._what, "now the leader" if leading else "no longer the leader"
            )
            if self.on_change:
                self.on_change(leading)

    async def run(self) -> None:
        """Acquire and renew until cancelled."""
        while True:
            try:
                await self.attempt()
            except KubeError as e:
                stop_if_cancelled(e)
                log.warning("%s", e)
            self._report()
            await asyncio.sleep(self.settings.retry_period_s)
            self._report()  # the renew deadline may have passed while asleep

    async def release(self) -> None:
        """Give the Lease up (on shutdown) so a standby takes over at once."""
        if not self.is_leader:
            return
        s, api = self.settings, self.kube.coordination
        self._renewed_at = None
        self._report()
        try:
            lease: Any = await self.kube.call(
                f"reading {self._what}", api.read_namespaced_lease, s.name, s.namespace
            )
            if lease.spec.holder_identity != s.identity:
                return
            body = self._body(
                lease.metadata.resource_version,
                {
                    "holderIdentity": None,
                    "leaseDurationSeconds": 1,
                    "renewTime": micro_time(self.wall()),
                    "leaseTransitions": lease.spec.lease_transitions or 0,
                },
            )
            await self.kube.call(
                f"releasing {self._what}", api.replace_namespaced_lease, s.name, s.namespace, body
            )
        except KubeError as e:
            log.warning("%s (the lease will expire instead)", e)
