"""Local ``tidegate worker`` processes as the scaling target (``kind: local``).

For development and the demo: the scaler starts and stops worker processes
on its own machine, like a tiny ReplicaSet. A process that exits on its own
is replaced on the next observation (its exit is logged); one asked to stop
gets SIGTERM (the worker drains its jobs in flight) and is killed if it has
not exited within ``stop_grace_s``. Every process counts as ready while it
runs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from scaler.actuator import Replicas

log = logging.getLogger(__name__)


@dataclass
class LocalActuator:
    config_path: str
    route: str
    upstream: str | None = None
    app: str | None = None
    stop_grace_s: float = 10.0
    _running: list[asyncio.subprocess.Process] = field(default_factory=list)
    _stopping: list[tuple[asyncio.subprocess.Process, float]] = field(default_factory=list)
    _desired: int | None = None

    @property
    def describe(self) -> str:
        return f"local workers of route {self.route}"

    def _command(self) -> list[str]:
        cmd = [sys.executable, "-m", "tidegate", "worker", "-c", self.config_path]
        cmd += ["--route", self.route]
        cmd += ["--upstream", self.upstream] if self.upstream else ["--app", str(self.app)]
        return cmd

    async def _start(self) -> None:
        self._running.append(await asyncio.create_subprocess_exec(*self._command()))

    def _reap(self) -> None:
        for proc in [p for p in self._running if p.returncode is not None]:
            log.warning("%s: worker pid %d exited (%s)", self.describe, proc.pid, proc.returncode)
            self._running.remove(proc)
        now = time.monotonic()
        for proc, since in list(self._stopping):
            if proc.returncode is not None:
                self._stopping.remove((proc, since))
            elif now - since > self.stop_grace_s:
                proc.kill()

    async def observe(self) -> Replicas:
        self._reap()
        desired = len(self._running) if self._desired is None else self._desired
        while len(self._running) < desired:  # replace what exited on its own
            await self._start()
        return Replicas(desired=desired, current=len(self._running), ready=len(self._running))

    async def scale(self, replicas: int) -> bool:
        self._reap()
        if replicas == self._desired:
            return False
        self._desired = replicas
        while len(self._running) < replicas:
            await self._start()
        while len(self._running) > replicas:
            proc = self._running.pop()
            proc.send_signal(signal.SIGTERM)
            self._stopping.append((proc, time.monotonic()))
        return True

    async def prefer_idle(self, busy: Mapping[str, int]) -> int:
        """Local processes are stopped newest first; nothing to mark."""
        return 0

    async def close(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL past the grace) and wait."""
        for proc in self._running:
            proc.send_signal(signal.SIGTERM)
            self._stopping.append((proc, time.monotonic()))
        self._running.clear()
        for proc, _ in self._stopping:
            try:
                await asyncio.wait_for(proc.wait(), self.stop_grace_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._stopping.clear()
