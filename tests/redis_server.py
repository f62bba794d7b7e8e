"""A real redis-server for tests, on a free port, that tests can stop and restart.

The binary comes from PATH (``.ci/run`` installs it when missing). Each server
gets its own temporary directory; ``appendonly`` can be switched on for tests
that restart the server and expect the data back.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time

from shell.local_redis import free_port, start_redis_server


class RedisServer:
    def __init__(
        self,
        *,
        appendonly: bool = False,
        extra_args: tuple[str, ...] = (),
        password: str | None = None,
    ) -> None:
        self.port = free_port()
        self.appendonly = appendonly
        self.password = password
        self.extra_args = extra_args + (("--requirepass", password) if password else ())
        self._dir = tempfile.TemporaryDirectory(prefix="tidegate-test-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = start_redis_server(
            self.port, self._dir.name, appendonly=self.appendonly, extra_args=self.extra_args
        )
        wait_for_pong(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        """Started for the block (the benchmarks use it so), closed after."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for_pong(port: int, timeout_s: float = 10.0) -> None:
    """Until the server on ``port`` answers PING (or asks for a password)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"redis-server did not start on port {port}")


class ServerGroup:
    """Several servers started by a fixture, each in a folder of its own, that
    tests may kill one by one; ``close`` stops what still runs."""

    def __init__(self, prefix: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix=prefix)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        raise NotImplementedError

    def kill(self, port: int) -> None:
        """SIGKILL one server (a master, say): no shutdown, no last word."""
        self.procs[port].kill()
        self.procs[port].wait(10)

    def stop_all(self) -> None:
        """Stop every server that still runs and forget them all."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        self.procs.clear()

    def close(self) -> None:
        self.stop_all()
        self._dir.cleanup()
