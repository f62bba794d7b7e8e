"""A real local Sentinel setup for tests: one master, two replicas, three sentinels.

Two replicas, so that after a failover one is still there to acknowledge
writes (``replicas_ack: 1`` would refuse every admission without it).

All on free ports, torn down after; the server binary is
``shell.local_redis``'s choice (``--sentinel`` runs it as a
sentinel). Sentinels declare the master down after ``DOWN_AFTER_MS`` and
promote the replica, so a test can kill the master and watch the failover.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from shell.local_redis import free_port, redis_binary, start_redis_server
from tests.redis_server import ServerGroup, wait_for_pong

MASTER_NAME = "tidegate"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


class RedisSentinel(ServerGroup):
    def __init__(self) -> None:
        super().__init__("tidegate-test-sentinel-")
        self.master_port = free_port()
        self.replica_ports = [free_port() for _ in range(2)]
        self.sentinel_ports = [free_port() for _ in range(3)]

    @property
    def sentinels(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.sentinel_ports]

    def _folder(self, port: int) -> Path:
        folder = Path(self._dir.name) / str(port)
        folder.mkdir(exist_ok=True)
        return folder

    def start(self) -> None:
        self.procs[self.master_port] = start_redis_server(
            self.master_port, self._folder(self.master_port)
        )
        wait_for_pong(self.master_port)
        for port in self.replica_ports:
            self.procs[port] = start_redis_server(
                port,
                self._folder(port),
                extra_args=("--replicaof", "127.0.0.1", str(self.master_port)),
            )
            wait_for_pong(port)
        binary = redis_binary()
        assert binary is not None
        for port in self.sentinel_ports:
            folder = self._folder(port)
            config = folder / "sentinel.conf"
            config.write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                f"dir {folder}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            log = (folder / "sentinel.log").open("ab")
            self.procs[port] = subprocess.Popen(
                [binary, str(config), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
            )
        for port in self.sentinel_ports:
            wait_for_pong(port)
        self.wait_until_watching()

    def wait_until_watching(self, timeout_s: float = 30.0) -> None:
        """Until every sentinel knows the replicas and the two other sentinels:
        before that, a dead master would have no quorum to fail over."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = 0
            for port in self.sentinel_ports:
                with contextlib.suppress(redis.RedisError):
                    state: Any = redis.Redis(port=port).sentinel_master(MASTER_NAME)
                    replicas = len(self.replica_ports)
                    ready += state["num-other-sentinels"] == 2 and state["num-slaves"] == replicas
            if ready == len(self.sentinel_ports):
                return
            time.sleep(0.1)
        raise RuntimeError("the sentinels did not find each other and the replicas")
