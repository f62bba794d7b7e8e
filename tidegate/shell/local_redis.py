"""A local redis-server on a free port: for the demo, the benchmarks and the tests.

One place knows how such a throwaway server is started (bound to loopback,
its files in a folder of its own, persistence only when asked for) and how to
wait until it answers.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    """Return once something accepts connections on the port; RuntimeError if not in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s:.0f} s")


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def start_redis_server(
    port: int,
    folder: str | Path,
    *,
    appendonly: bool = False,
    extra_args: tuple[str, ...] = (),
    binary: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:port with its files in ``folder``.

    No RDB snapshots; with ``appendonly`` every write is fsynced (appendfsync
    always), so a restart keeps everything acknowledged. Its log goes to
    ``folder/redis.log``.
    """
    path = binary or redis_binary()
    if path is None:
        raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
    log = (Path(folder) / "redis.log").open("ab")
    args = [
        path,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        "always",
        "--dir",
        str(folder),
        *extra_args,
    ]
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
