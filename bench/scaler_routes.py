"""The scaler's CPU per route: what one scaler process spends to keep N idle
routes sampled and decided, every interval.

Per route count (``--routes 10 100 300``): a fake Kubernetes API server
(``tests/fake_kube.py``) runs in a process of its own with one Deployment per
route; ``tidegate scaler`` runs as another process on a config with N routes
(``interval_s`` 1, no leader election), each scaling its Deployment, against
one redis-server. Once every route has been decided at least once (start-up
is not measured: at 1000 routes it takes seconds of CPU) and after a
warm-up, the scaler's CPU time (user + system, from ``/proc``) over
``--window-s`` seconds, divided by routes x seconds, is the cost of one
route for one second, in ms. The routes are idle: this is the floor every
scaled route costs, whatever its traffic. The bench reads ``/metrics`` (to
count decisions) just before the window and just after it; neither read is
in the window, and the second one's CPU is reported on its own.

With ``--replicas R --shards S``, R scaler processes share the routes
(``scaler.shards``, leader election on the fake API server); each one's CPU
is divided by the routes it led in the window (its decisions counted from
its ``/metrics``).

Usage: python bench/scaler_routes.py [--routes 10 100 300] [--window-s 15]
       [--replicas 1] [--shards 1] [--profile PREFIX]  (py-spy scaler 0)
Needs redis-server on PATH; Linux (/proc).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from admission import cpu_s  # noqa: E402

from shell.local_redis import free_port  # noqa: E402
from tests.integration.scaler.helpers import deployment_routes  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

NS = "bench"

FAKE_API = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.fake_kube import FakeKube

async def main(routes, kubeconfig):
    fake = FakeKube()
    await fake.start()
    for n in range(routes):
        fake.add_deployment({ns!r}, f"svc-{{n}}-worker", replicas=1)
    fake.kubeconfig(Path(kubeconfig))
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


def decisions(admin_port: int) -> dict[str, float]:
    """Per route, the scaler's decisions so far (from its /metrics)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).read()
    out = {}
    for line in text.decode().splitlines():
        if line.startswith("tidegate_scaler_decisions_total{"):
            route = line.split('route="', 1)[1].split('"', 1)[0]
            out[route] = float(line.rsplit(" ", 1)[1])
    return out


def started(ports: list[int], routes: int, timeout_s: float = 120.0) -> None:
    """Wait until every route has been decided at least once (the scalers
    are up, their loops running): starting up (imports, the first list of
    Deployments, a thousand loops) is not what is measured."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            decided = set()
            for port in ports:
                decided |= {route for route, n in decisions(port).items() if n >= 1}
            if len(decided) >= routes:
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.5)
    raise SystemExit(f"the scalers did not decide every route within {timeout_s:g} s")


def measure(
    routes: int,
    window_s: float,
    warmup_s: float,
    folder: Path,
    redis_url: str,
    profile: str | None = None,
    replicas: int = 1,
    shards: int = 1,
) -> list[tuple[float, int, float]]:
    """Per scaler process: ms CPU per route-second of the routes it led in
    the window, how many routes that was, and the CPU (ms) of one scrape of
    its ``/metrics`` (read to 10 ms ticks: 0 or 10 at few routes)."""
    kubeconfig = folder / f"kubeconfig-{routes}"
    api = subprocess.Popen(
        [
            sys.executable,
            "-c",
            FAKE_API.format(root=str(ROOT), ns=NS),
            str(routes),
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert api.stdout is not None
    assert api.stdout.readline().strip() == "ready"
    ports = [free_port() for _ in range(replicas)]
    scalers = []
    for replica, port in enumerate(ports):
        config = folder / f"tidegate-{routes}-{replica}.yaml"
        config.write_text(yaml.safe_dump(scaler_config(routes, redis_url, port, replicas, shards)))
        scalers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tidegate",
                    "--log-level",
                    "WARNING",
                    "scaler",
                    "-c",
                    str(config),
                    "--kubeconfig",
                    str(kubeconfig),
                ],
            )
        )
    try:
        started(ports, routes)
        time.sleep(warmup_s)
        counted = [decisions(port) for port in ports]
        # CPU from after that scrape: rendering /metrics for 1000 routes is
        # a cost of the scrape (measured on its own below), not of the routes.
        before = [cpu_s(p.pid) for p in scalers]
        spy = None
        if profile:  # py-spy's own sampling costs the scaler a little CPU too
            out = f"{profile}-{routes}.txt"
            spy = subprocess.Popen(
                ["py-spy", "record", "-r", "100", "-d", str(int(window_s)), "-p",
                 str(scalers[0].pid), "-f", "raw", "-o", out],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        time.sleep(window_s)
        used = [cpu_s(p.pid) - b for p, b in zip(scalers, before, strict=True)]
        led, scrape_ms = [], []
        for proc, port, then in zip(scalers, ports, counted, strict=True):
            cpu_before = cpu_s(proc.pid)
            now = decisions(port)
            scrape_ms.append((cpu_s(proc.pid) - cpu_before) * 1000)
            led.append(sum(1 for route, n in now.items() if n > then.get(route, 0)))
        if spy is not None:
            spy.wait(30)
    finally:
        for p in scalers:
            p.terminate()
        for p in scalers:
            p.wait(20)
        api.terminate()
        api.wait(10)
    return [
        (cpu * 1000 / (max(1, n) * window_s), n, scrape)
        for cpu, n, scrape in zip(used, led, scrape_ms, strict=True)
    ]


def scaler_config(
    routes: int, redis_url: str, admin_port: int, replicas: int, shards: int
) -> dict[str, Any]:
    scaler: dict[str, Any] = {"leader_election": replicas > 1, "shards": shards}
    scaler["admin_listen"] = f"127.0.0.1:{admin_port}"
    if replicas > 1:
        scaler["lease_namespace"] = NS
    return {
        "redis": {"url": redis_url},
        "scaler": scaler,
        "routes": deployment_routes(routes, NS, interval_s=1, min_replicas=1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, nargs="+", default=[10, 100, 300])
    parser.add_argument("--window-s", type=float, default=15.0)
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--replicas", type=int, default=1, help="scaler processes")
    parser.add_argument("--shards", type=int, default=1, help="scaler.shards")
    parser.add_argument(
        "--profile", metavar="PREFIX", help="py-spy the scaler into PREFIX-ROUTES.txt (raw)"
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as name, RedisServer() as server:
        for routes in args.routes:
            found = measure(
                routes, args.window_s, args.warmup_s, Path(name), server.url, args.profile,
                args.replicas, args.shards,
            )  # fmt: skip
            results.append((routes, found))
            for replica, (ms, led, scrape) in enumerate(found):
                print(
                    f"{routes} routes, scaler {replica}: leads {led}, "
                    f"{ms:.2f} ms CPU per route-second, a /metrics scrape {scrape:.0f} ms",
                    flush=True,
                )
    print()
    print(
        f"window {args.window_s:g} s after a {args.warmup_s:g} s warm-up, interval_s 1, "
        f"idle routes, {args.replicas} scaler(s), shards {args.shards}"
    )
    print(
        "| routes | scaler | routes led | CPU, ms per route-second led | share of one core "
        "| CPU of one /metrics scrape, ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for routes, found in results:
        for replica, (ms, led, scrape) in enumerate(found):
            print(
                f"| {routes} | {replica} | {led} | {ms:.2f} | {ms * led / 10:.0f}% | {scrape:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
