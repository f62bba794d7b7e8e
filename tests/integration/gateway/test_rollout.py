"""A rolling restart of two gateways behind nginx, under steady sync and
async load, loses no request.

As Kubernetes rolls a Deployment behind ingress-nginx: a new gateway starts
and becomes ready, its endpoint is added; the old one gets SIGTERM and its
endpoint is removed about a second later (the controller's reload); then the
next. Meanwhile clients keep posting through nginx: sync requests (a relay
worker answers 201) and async ones (202). Every answer must be the one the
route gives when nothing happens: no 5xx, no connection error, no sync
request answered 202 (a wait cut short), and each old gateway exits 0.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Upstream, running_worker, wait_until
from tests.gateway_process import GatewayProcess
from tests.nginx import Nginx
from tidegate.settings import parse_settings
from worker.relay import Relay

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")

ENDPOINT_REMOVED_AFTER_S = 1.0
"""How long after SIGTERM the load balancer drops the old gateway."""
CLIENTS = 4
"""Clients per route kind, each posting one request after another."""


def config(redis_url: str) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url},
        "gateway": {"drain_delay_s": 3, "shutdown_grace_s": 20},
        "routes": [
            {"name": "orders", "match": {"path_prefix": "/orders"}, "wait_s": 30},
            {"name": "reports", "match": {"path_prefix": "/reports"}, "mode": "async"},
        ],
    }


@pytest.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[Nginx]:
    folder = tmp_path / "nginx"
    folder.mkdir()
    server = Nginx(folder)
    yield server
    server.stop()


async def test_a_rolling_restart_behind_nginx_loses_no_request(
    tmp_path: Path, redis_url: str, upstream: Upstream, nginx: Nginx
) -> None:
    raw = config(redis_url)
    answers: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    stop = asyncio.Event()
    # A new connection per request: nginx's own client keep-alive on reload
    # is not what is tested; its upstream keep-alive to the gateways is.
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=60),
    )
    old = [GatewayProcess(tmp_path, raw), GatewayProcess(tmp_path, raw)]
    new: list[GatewayProcess] = []

    async def post(path: str, expected: int) -> None:
        while not stop.is_set():
            try:
                async with http.post(nginx.url + path, data=b"widget") as r:
                    await r.read()
                    answers[f"{path} {r.status}"] += 1
                    if r.status != expected:
                        failures.append(f"{path}: {r.status} {r.headers} {await r.text()}")
            except aiohttp.ClientError as e:
                answers[f"{path} {type(e).__name__}"] += 1
                failures.append(f"{path}: {e!r}")

    async def roll(gateway: GatewayProcess, live: list[GatewayProcess]) -> None:
        fresh = GatewayProcess(tmp_path, raw)
        new.append(fresh)
        await fresh.start(http)  # ready
        live.append(fresh)
        nginx.set_upstreams([g.port for g in live])
        before = sum(answers.values())
        await wait_until(lambda: sum(answers.values()) >= before + 20, 30, what="traffic")
        gateway.terminate()
        await asyncio.sleep(ENDPOINT_REMOVED_AFTER_S)
        live.remove(gateway)
        nginx.set_upstreams([g.port for g in live])
        assert await gateway.wait() == 0, gateway.log

    try:
        for gateway in old:
            await gateway.start(http)
        nginx.start([g.port for g in old])
        settings = parse_settings(raw, env={})
        async with running_worker(settings, "orders", Relay(upstream.url, 5.0), concurrency=32):
            clients = [
                asyncio.create_task(post(path, expected))
                for path, expected in (("/orders", 201), ("/reports", 202))
                for _ in range(CLIENTS)
            ]
            try:
                await wait_until(lambda: sum(answers.values()) >= 40, 30, what="load")
                live = list(old)
                for gateway in old:
                    await roll(gateway, live)
                after = sum(answers.values())
                await wait_until(lambda: sum(answers.values()) >= after + 40, 30, what="load")
            finally:
                stop.set()
                await asyncio.gather(*clients)
    finally:
        await http.close()
        for gateway in old + new:
            await gateway.close()
    assert not failures, (failures[:5], answers, nginx.error_log()[-2000:])
    assert answers["/orders 201"] > 0
    assert answers["/reports 202"] > 0
    for gateway in old:
        assert "Traceback" not in gateway.log
