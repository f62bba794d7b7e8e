"""Shutdown as Kubernetes needs it, on a real gateway process and SIGTERM.

Not ready at once but serving on for ``drain_delay_s`` (answers carry
``Connection: close``), then no new connections while the requests in flight
finish (a sync request gets the service's answer), then exit 0. What is
asserted is the order of things (each step observed), never a duration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Upstream, running_worker, wait_until
from tests.gateway_process import GatewayProcess, refuses_connections
from tidegate.settings import parse_settings
from worker.relay import Relay


def config(redis_url: str, **gateway: Any) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url},
        "gateway": gateway,
        "routes": [
            {"name": "orders", "match": {"path_prefix": "/orders"}, "wait_s": 30},
            {"name": "reports", "match": {"path_prefix": "/reports"}, "mode": "async"},
        ],
    }


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    yield session
    await session.close()


async def test_sigterm_drains_not_ready_serving_then_finishing(
    tmp_path: Path, redis_url: str, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    raw = config(redis_url, drain_delay_s=4, shutdown_grace_s=20)
    gateway = GatewayProcess(tmp_path, raw)
    try:
        await gateway.start(http)
        # A keep-alive connection opened before SIGTERM, as a load balancer holds one.
        keepalive = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        async with keepalive.post(gateway.url("/reports"), data=b"before") as r:
            assert r.status == 202
            assert r.headers.get("Connection", "").lower() != "close"
        # No worker yet: this sync request waits for one.
        before = asyncio.create_task(http.post(gateway.url("/orders"), data=b"before"))
        await asyncio.sleep(0)
        gateway.terminate()
        await wait_until(
            lambda: _is(gateway.readyz(http), 503), what="/readyz 503 on SIGTERM, admin still up"
        )
        async with http.get(gateway.admin_url("/readyz")) as r:
            assert "draining for shutdown" in (await r.json())["reasons"]
        # Still serving, on the old connection and on new ones; each answer ends its connection.
        async with keepalive.post(gateway.url("/reports"), data=b"draining") as r:
            assert r.status == 202
            assert r.headers["Connection"] == "close"
        await keepalive.close()
        during = asyncio.create_task(http.post(gateway.url("/orders"), data=b"during"))
        # Then the listener closes; the two sync requests are still in flight.
        await wait_until(
            lambda: refuses_connections(gateway.port), 30, what="the listener to close"
        )
        assert not before.done()
        assert not during.done()
        assert gateway.proc is not None
        assert gateway.proc.returncode is None
        async with running_worker(parse_settings(raw, env={}), "orders", Relay(upstream.url, 2.0)):
            answers = [await before, await during]
            for answer in answers:  # the service's answer, not a 202
                assert answer.status == 201, await answer.text()
                answer.release()
        assert await gateway.wait() == 0
    finally:
        await gateway.close()
    log = gateway.log
    assert "not ready; serving on for 4 s" in log
    assert "shut down" in log
    assert "Traceback" not in log


async def test_a_sync_wait_past_the_grace_answers_202_with_its_state(
    tmp_path: Path, redis_url: str, http: aiohttp.ClientSession
) -> None:
    """No worker: the grace runs out, the wait is released with the job's
    state (queued), the job stays queued, and the process exits 0."""
    gateway = GatewayProcess(tmp_path, config(redis_url, drain_delay_s=0, shutdown_grace_s=1))
    try:
        await gateway.start(http)
        pending = asyncio.create_task(http.post(gateway.url("/orders"), data=b"x"))
        await wait_until(lambda: _in_flight(gateway, http), what="the request to be waiting")
        gateway.terminate()
        answer = await pending
        assert answer.status == 202
        assert (await answer.json())["state"] == "queued"
        assert await gateway.wait() == 0
    finally:
        await gateway.close()


async def _is(status: Any, expected: int) -> bool:
    return bool(await status == expected)


async def _in_flight(gateway: GatewayProcess, http: aiohttp.ClientSession) -> bool:
    async with http.get(gateway.admin_url("/metrics")) as r:
        text = await r.text()
    return any(
        line.startswith("tidegate_gateway_in_flight_requests ") and float(line.split()[1]) >= 1
        for line in text.splitlines()
    )
