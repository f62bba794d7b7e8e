"""A Deployment as the scaling target, through the ``/scale`` subresource only.

Reading uses the namespace's informer (``scaler.informer``: list + watch)
while it is synced, else ``get deployments`` (the scale subresource has no
ready count);
writing replaces the Scale object with the resourceVersion just read, so a
concurrent writer (an operator's ``kubectl scale``, a rollout) is never
overwritten blindly: on 409 Conflict the scale is read again and the write
retried, a bounded number of times. The scaler's RBAC needs nothing that can
write a whole Deployment.

Before a scale-in the scaler marks the Deployment's pods with
``controller.kubernetes.io/pod-deletion-cost`` from what their workers report
(``prefer_idle``): the ReplicaSet then removes idle pods first, not busy ones
with jobs in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaler.actuator import Replicas, TargetMissing
from scaler.informer import DeploymentCache, cached
from scaler.kube import Kube, KubeError

MAX_CONFLICTS = 5

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
"""The annotation a ReplicaSet reads to choose which pods to remove first (lowest first)."""


def pod_of(consumer: str) -> str:
    """A worker's pod: a consumer is named ``hostname-pid-suffix``, and a pod's
    hostname is its name."""
    return consumer.rsplit("-", 2)[0]


@dataclass
class DeploymentActuator:
    kube: Kube
    namespace: str
    name: str
    conflicts: int = 0
    """409s met so far (each one re-read and retried)."""
    selector: dict[str, str] | None = None
    """The Deployment's matchLabels, from the last observation."""
    cache: DeploymentCache | None = None
    """The namespace's informer: read from it while it is synced, else GET."""

    @property
    def describe(self) -> str:
        return f"deployment {self.namespace}/{self.name}"

    def _missing(self, e: KubeError) -> Exception:
        if e.status == 404:
            return TargetMissing(f"{self.describe} not found")
        return e

    async def observe(self) -> Replicas:
        if self.cache is not None and self.cache.synced:
            found = self.cache.get(self.name)
            if found is None:
                raise TargetMissing(f"{self.describe} not found")
            self.selector = found.selector
            return found.replicas
        try:
            deployment: Any = await self.kube.call(
                f"reading {self.describe}",
                self.kube.apps.read_namespaced_deployment,
                self.name,
                self.namespace,
            )
        except KubeError as e:
            raise self._missing(e) from e
        seen = cached(deployment)
        self.selector = seen.selector
        return seen.replicas

    async def prefer_idle(self, busy: Mapping[str, int]) -> int:
        """Mark the Deployment's pods with ``pod-deletion-cost``: a pod whose
        worker is idle costs 0, a busy one its jobs in flight, so the
        ReplicaSet removes idle pods first (and, among busy ones, the least
        busy). Pods with no worker report are left as they are; only pods
        whose cost changes are patched. Needs ``list`` and ``patch`` on pods."""
        if not self.selector:
            return 0
        load: dict[str, int] = {}
        for consumer, in_flight in busy.items():
            pod = pod_of(consumer)
            load[pod] = load.get(pod, 0) + max(0, in_flight)
        if not load:
            return 0
        found: Any = await self.kube.call(
            f"listing the pods of {self.describe}",
            self.kube.core.list_namespaced_pod,
            self.namespace,
            label_selector=",".join(f"{k}={v}" for k, v in sorted(self.selector.items())),
        )
        marked = 0
        for pod in found.items:
            name = pod.metadata.name
            if name not in load:
                continue
            cost = str(min(load[name], 1_000_000))
            if (pod.metadata.annotations or {}).get(DELETION_COST) == cost:
                continue
            await self.kube.call(
                f"marking pod {self.namespace}/{name} for scale-in",
                self.kube.core.patch_namespaced_pod,
                name,
                self.namespace,
                {"metadata": {"annotations": {DELETION_COST: cost}}},
            )
            marked += 1
        return marked

    async def scale(self, replicas: int) -> bool:
        for _ in range(MAX_CONFLICTS):
            try:
                current: Any = await self.kube.call(
                    f"reading the scale of {self.describe}",
                    self.kube.apps.read_namespaced_deployment_scale,
                    self.name,
                    self.namespace,
                )
                if current.spec.replicas == replicas:
                    return False
                body = {
                    "apiVersion": "autoscaling/v1",
                    "kind": "Scale",
                    "metadata": {
                        "name": self.name,
                        "namespace": self.namespace,
                        "resourceVersion": current.metadata.resource_version,
                    },
                    "spec": {"replicas": replicas},
                }
                await self.kube.call(
                    f"scaling {self.describe} to {replicas}",
                    self.kube.apps.replace_namespaced_deployment_scale,
                    self.name,
                    self.namespace,
                    body,
                )
                if self.cache is not None:
                    self.cache.asked(self.name, replicas)
                return True
            except KubeError as e:
                if e.status != 409:
                    raise self._missing(e) from e
                self.conflicts += 1
        raise KubeError(
            f"scaling {self.describe}: still conflicting after {MAX_CONFLICTS} attempts", 409
        )

    async def close(self) -> None:
        return None
