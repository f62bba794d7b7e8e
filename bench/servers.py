"""The servers the sync-path benches run, and the cores they run on.

``bench/sync_path.py`` and ``bench/sync_cpu.py`` lay the processes out the
same way: the server under test (a gateway, nginx, an aiohttp proxy) on
``SERVER_CORE``, the load, the service, the worker and Redis on
``LOAD_CORE`` (``taskset``), so the server has a core of its own. This
module starts and stops them and writes the gateways' config.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import yaml

from shell.local_redis import free_port

SERVER_CORE, LOAD_CORE = "0", "1"
TENANTS = {"free": None, "metered": {"rate_per_s": 1e6, "burst": 10**6}}
"""Tenants of the second gateway: one without a quota, one whose quota never binds."""


def pinned(core: str, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["taskset", "-c", core, *cmd], **kwargs)


def pin(pid: int, core: str) -> None:
    """Pin a running process (Redis, started by ``start_redis_server``) to a core."""
    subprocess.run(["taskset", "-pc", core, str(pid)], check=True, stdout=subprocess.DEVNULL)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate the processes, the last started first (the worker drains
    while Redis is still up); kill what does not end within 30 s."""
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def api_key(tenant: str) -> str:
    return f"bench-key-{tenant}"


def config(folder: Path, redis_url: str, upstream: str, listen: int, tenants: bool) -> Path:
    """The gateway's config. The second gateway (``tenants``) serves only the
    proxy route: with the sync route it would also subscribe to the route's
    done channel and be woken, on the server's core, by every job of the
    ``sync`` tier, which measures one gateway."""
    raw: dict[str, Any] = {
        "redis": {"url": redis_url},
        "gateway": {"listen": f"127.0.0.1:{listen}", "admin_listen": f"127.0.0.1:{free_port()}"},
        "routes": [
            {
                "name": "sync",
                "match": {"path_prefix": "/sync", "methods": ["POST"]},
                "mode": "sync",
                "result_ttl_s": 600,
                "worker": {"concurrency": 64},
            },
            {
                "name": "async",
                "match": {"path_prefix": "/async", "methods": ["POST"]},
                "mode": "async",
                "result_ttl_s": 600,
            },
            {
                "name": "proxy",
                "match": {"path_prefix": "/proxy", "methods": ["POST"]},
                "mode": "proxy",
                "upstream": upstream,
            },
        ],
    }
    if tenants:
        raw["routes"] = [route for route in raw["routes"] if route["mode"] == "proxy"]
        raw["tenants"] = [
            {
                "name": name,
                "api_key_sha256": hashlib.sha256(api_key(name).encode()).hexdigest(),
                **({"quota": quota} if quota else {}),
            }
            for name, quota in TENANTS.items()
        ]
    path = folder / f"tidegate-{'tenants' if tenants else 'plain'}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def layout(redis_core: str) -> str:
    """Which process runs on which core, as the reports say it."""
    if redis_core == SERVER_CORE:
        return (
            f"server and Redis on core {SERVER_CORE}, load, service and worker on core {LOAD_CORE}"
        )
    return f"server on core {SERVER_CORE}, load, service, worker and Redis on core {LOAD_CORE}"
