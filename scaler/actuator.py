"""What the scaler scales, behind one small interface.

An actuator reports a target's replicas (what was asked for, what exists,
what is ready) and changes what is asked for. Two exist: a Kubernetes
Deployment through its ``/scale`` subresource (``scaler.deployment``) and
local ``tidegate worker`` processes (``scaler.local``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from tidegate.errors import TidegateError


@dataclass(frozen=True)
class Replicas:
    desired: int
    """What the target is asked to run (a Deployment's spec.replicas)."""
    current: int
    """What exists now."""
    ready: int
    """What is ready to work."""


class TargetMissing(TidegateError):
    """The target does not exist (reported in status; the scaler keeps going)."""


class Actuator(Protocol):
    @property
    def describe(self) -> str:
        """For messages: ``deployment shop/orders-worker``."""
        ...

    async def observe(self) -> Replicas: ...

    async def scale(self, replicas: int) -> bool:
        """Ask for ``replicas``; False when that was already asked for."""
        ...

    async def prefer_idle(self, busy: Mapping[str, int]) -> int:
        """Before a scale-in: make the target remove idle workers first.
        ``busy``: jobs in flight per worker process (consumer name); returns
        how many workers were marked."""
        ...

    async def close(self) -> None: ...
