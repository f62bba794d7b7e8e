"""Real ``tidegate worker`` processes for the tests that kill them."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class Workers:
    """Worker processes of one route, started one at a time, killed at close.

    ``executor`` is what serves the jobs (``--upstream URL`` or ``--app
    module:function``; a module of the tests is importable: the repository
    is on the processes' path)."""

    def __init__(
        self, config: Path, route: str, *executor: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.env = dict(env or {})
        """Set in the processes' environment beside the test's own."""
        self.config = config
        self.route = route
        self.executor = executor
        self.procs: list[asyncio.subprocess.Process] = []

    async def start_one(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tidegate",
            "--log-level",
            "WARNING",
            "worker",
            "-c",
            str(self.config),
            "--route",
            self.route,
            *self.executor,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO), **self.env},
        )
        self.procs.append(proc)
        return proc

    async def close(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
        for proc in self.procs:
            await proc.wait()
