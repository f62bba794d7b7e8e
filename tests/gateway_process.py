"""A real ``tidegate gateway`` process, for the tests that signal it (drain,
rollouts behind a load balancer)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from shell.local_redis import free_port
from tests.conftest import wait_until
from tests.worker_processes import REPO


class GatewayProcess:
    """One gateway on free ports with the given config (its ``gateway.listen``
    and ``admin_listen`` are set here); its output is kept for the test."""

    def __init__(
        self, folder: Path, config: dict[str, Any], env: Mapping[str, str] | None = None
    ) -> None:
        self.env = dict(env or {})
        """Set in the process's environment beside the test's own."""
        self.port, self.admin_port = free_port(), free_port()
        gateway = {
            **config.get("gateway", {}),
            "listen": f"127.0.0.1:{self.port}",
            "admin_listen": f"127.0.0.1:{self.admin_port}",
        }
        self.config = folder / f"gateway-{self.port}.yaml"
        self.config.write_text(yaml.safe_dump({**config, "gateway": gateway}))
        self.log_path = folder / f"gateway-{self.port}.log"
        self.proc: asyncio.subprocess.Process | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def admin_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    async def start(self, http: aiohttp.ClientSession) -> None:
        """Start it and wait until ``/readyz`` says ready."""
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tidegate",
                "gateway",
                "-c",
                str(self.config),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO), **self.env},
            )
        await wait_until(lambda: self.ready(http), 30, what=f"the gateway on {self.port} ready")

    async def ready(self, http: aiohttp.ClientSession) -> bool:
        return await self.readyz(http) == 200

    async def readyz(self, http: aiohttp.ClientSession) -> int | None:
        """``/readyz``'s status, or None when the admin port does not answer."""
        try:
            async with http.get(self.admin_url("/readyz")) as r:
                return r.status
        except aiohttp.ClientError:
            return None

    def terminate(self) -> None:
        """SIGTERM, as Kubernetes sends it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def wait(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def refuses_connections(port: int) -> bool:
    """Whether nothing listens on the port any more."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False
