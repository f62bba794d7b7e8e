"""A Deployment as the scaling target, through the ``/scale`` subresource only.

Reading uses ``get deployments`` (the scale subresource has no ready count);
writing replaces the Scale object with the resourceVersion just read, so a
concurrent writer (an operator's ``kubectl scale``, a rollout) is never
overwritten blindly: on 409 Conflict the scale is read again and the write
retried, a bounded number of times. The scaler's RBAC needs nothing that can
write a whole Deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scaler.actuator import Replicas, TargetMissing
from scaler.kube import Kube, KubeError

MAX_CONFLICTS = 5


@dataclass
class DeploymentActuator:
    kube: Kube
    namespace: str
    name: str
    conflicts: int = 0
    """409s met so far (each one re-read and retried)."""

    @property
    def describe(self) -> str:
        return f"deployment {self.namespace}/{self.name}"

    def _missing(self, e: KubeError) -> Exception:
        if e.status == 404:
            return TargetMissing(f"{self.describe} not found")
        return e

    async def observe(self) -> Replicas:
        try:
            deployment: Any = await self.kube.call(
                f"reading {self.describe}",
                self.kube.apps.read_namespaced_deployment,
                self.name,
                self.namespace,
            )
        except KubeError as e:
            raise self._missing(e) from e
        spec, status = deployment.spec, deployment.status
        return Replicas(
            desired=int(spec.replicas if spec.replicas is not None else 1),
            current=int((status and status.replicas) or 0),
            ready=int((status and status.ready_replicas) or 0),
        )

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
