"""The admin server's /metrics is rendered off the event loop: a slow
rendering (a thousand routes) must not stall the process's loops."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shell.local_redis import free_port
from tidegate.admin_server import metrics_response, serve_admin

GUARD_S = 10.0
"""Only a guard against a hang: the collector normally waits far less."""


class WaitsForTheLoop(Collector):
    """A collector that, while it renders, waits for the event loop to run a
    callback: rendered on the loop itself, the callback cannot run until the
    guard runs out, and the collector reports that it never saw it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.loop_ran = threading.Event()
        self.saw_the_loop: bool | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.loop.call_soon_threadsafe(self.loop_ran.set)
        self.saw_the_loop = self.loop_ran.wait(GUARD_S)
        yield GaugeMetricFamily("probe_value", "A probe.", value=1.0)


async def test_metrics_are_rendered_while_the_loop_keeps_running() -> None:
    registry = CollectorRegistry()
    probe = WaitsForTheLoop(asyncio.get_running_loop())
    registry.register(probe)
    response = await metrics_response(registry)
    assert probe.saw_the_loop is True
    assert isinstance(response.body, bytes)
    assert b"probe_value 1.0" in response.body
    assert response.headers["Content-Type"].startswith("text/plain")


async def test_the_admin_server_serves_metrics_and_probes() -> None:
    registry = CollectorRegistry()
    probe = WaitsForTheLoop(asyncio.get_running_loop())
    registry.register(probe)
    port = free_port()
    reasons: list[str | None] = ["warming up"]
    runner = await serve_admin(registry, "127.0.0.1", port, lambda: reasons[0])
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 200
                assert "probe_value 1.0" in await r.text()
            assert probe.saw_the_loop is True
            async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
                assert r.status == 503
                assert (await r.json())["reason"] == "warming up"
            reasons[0] = None
            async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
                assert r.status == 200
            async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
    finally:
        await runner.cleanup()
