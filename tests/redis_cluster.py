"""A real local Redis Cluster for tests: three masters, three replicas.

Six servers (``--cluster-enabled yes``) on free ports, joined by the cli's
``--cluster create --cluster-replicas 1 --cluster-yes``, torn down after.
The server and the cli are ``shell.local_redis``'s choice, so the
same fixture runs on Redis and on the embedded Valkey. Tests may kill a
master (``kill``) to watch a failover.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from shell.local_redis import free_port, redis_cli, start_redis_server
from tests.redis_server import ServerGroup, wait_for_pong

NODES = 6
NODE_TIMEOUT_MS = 1000
"""How long a master may be unreachable before its replica takes over."""
ATTEMPTS = 3
"""Starts of the nodes on fresh ports before a fixture gives up."""


def cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


CLUSTER_ARGS = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0")  # fmt: skip
"""``cluster-replica-validity-factor 0``: a replica takes over however long
ago it last heard from its master. A cluster only seconds old may have a
replica still in its first sync when a test kills the master; with the
default factor such a replica never takes over and the test waits in vain."""


class RedisCluster(ServerGroup):
    def __init__(self) -> None:
        super().__init__("tidegate-test-cluster-")
        self.ports = [cluster_port() for _ in range(NODES)]

    @property
    def url(self) -> str:
        """A seed: any node will do."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        """Start the six nodes and join them.

        Ports are free when chosen, not reserved: another process may bind
        one (or its bus port) before the node does, and the node then exits
        at once. The nodes are then started again on other ports, up to
        ``ATTEMPTS`` times; the failed node's log is in the error after that."""
        for attempt in range(1, ATTEMPTS + 1):
            failed = self._start_nodes()
            if failed is None:
                break
            log = (Path(self._dir.name) / str(failed) / "redis.log").read_text(errors="replace")
            self.stop_all()
            if attempt == ATTEMPTS:
                raise RuntimeError(f"cluster node on port {failed} did not start:\n{log[-2000:]}")
            self.ports = [cluster_port() for _ in range(NODES)]
        cli = redis_cli()
        if cli is None:
            raise RuntimeError("no redis-cli (or valkey-cli) beside the server")
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_until_ok()

    def _start_nodes(self) -> int | None:
        """Start a node on each port; the port of one that did not come up, or None."""
        for port in self.ports:
            folder = Path(self._dir.name) / str(port)
            folder.mkdir(exist_ok=True)
            self.procs[port] = start_redis_server(
                port, folder, extra_args=(*CLUSTER_ARGS, "--appendonly", "no")
            )
        for port in self.ports:
            deadline = time.monotonic() + 10.0
            while True:
                if self.procs[port].poll() is not None or time.monotonic() > deadline:
                    return port
                try:
                    wait_for_pong(port, 0.2)
                    break
                except RuntimeError:
                    continue
        return None

    def cluster_info(self, port: int) -> dict[str, str]:
        cli = redis_cli()
        assert cli is not None
        out = subprocess.run(
            [cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True, timeout=10
        ).stdout
        return dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line.strip())

    def wait_until_ok(self, timeout_s: float = 30.0) -> None:
        """Until every running node says the cluster is ok (all slots served)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            running = [p for p, proc in self.procs.items() if proc.poll() is None]
            if all(self.cluster_info(p).get("cluster_state") == "ok" for p in running):
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach state ok")

    def wait_for_failover(self, killed: int, timeout_s: float = 30.0) -> None:
        """Until a running node sees the killed master failed and its slots
        taken over by its replica (its line in CLUSTER NODES lists no slots),
        and the cluster is ok again."""
        cli = redis_cli()
        assert cli is not None
        witness = next(p for p in self.ports if p != killed and self.procs[p].poll() is None)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            out = subprocess.run(
                [cli, "-p", str(witness), "cluster", "nodes"],
                capture_output=True, text=True, timeout=10,
            ).stdout  # fmt: skip
            line = next((x for x in out.splitlines() if f":{killed}@" in x), "")
            fields = line.split()
            if "fail" in (fields[2] if len(fields) > 2 else "") and len(fields) <= 8:
                self.wait_until_ok(timeout_s)
                return
            time.sleep(0.1)
        raise RuntimeError(f"no failover of the master on {killed}")

    def restart(self, port: int) -> None:
        """Start a killed node again, on its port and files: it rejoins (a
        former master comes back as a replica of the one that replaced it)."""
        folder = Path(self._dir.name) / str(port)
        self.procs[port] = start_redis_server(port, folder, extra_args=CLUSTER_ARGS)
        wait_for_pong(port)

    def flush(self) -> None:
        cli = redis_cli()
        assert cli is not None
        for port, proc in self.procs.items():
            if proc.poll() is None:
                subprocess.run([cli, "-p", str(port), "flushall"], capture_output=True, timeout=10)
