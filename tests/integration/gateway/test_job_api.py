"""The job API, error answers as problems, the OpenAPI document, the admin port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from yarl import URL

from tests.conftest import RunningGateway, wait_until
from tests.integration.gateway.problems import (
    problem_of,
)
from tidegate.settings import Settings


async def test_cancel_queued_job_then_409_once_running(
    gateway: RunningGateway, settings: Settings
) -> None:
    async with gateway.http.post(gateway.url("/reports"), data=b"1") as r:
        job_id = (await r.json())["id"]
    async with gateway.http.delete(gateway.url(f"/_tidegate/jobs/{job_id}")) as r:
        assert r.status == 200
        assert (await r.json())["state"] == "cancelled"
    async with gateway.http.delete(gateway.url(f"/_tidegate/jobs/{job_id}")) as r:
        assert r.status == 409
        assert (await problem_of(r))["state"] == "cancelled"
    async with gateway.http.get(gateway.url(f"/_tidegate/jobs/{job_id}/result")) as r:
        assert r.status == 409

    # A running job: a handler that blocks until released.
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(job: Any) -> bytes:
        started.set()
        await release.wait()
        return b"done"

    from tests.conftest import running_worker
    from worker.handler import Handler

    async with gateway.http.post(gateway.url("/reports"), data=b"2") as r:
        running_id = (await r.json())["id"]
    async with running_worker(settings, "reports", Handler(slow)):
        await asyncio.wait_for(started.wait(), 10)
        async with gateway.http.delete(gateway.url(f"/_tidegate/jobs/{running_id}")) as r:
            assert r.status == 409
            assert (await problem_of(r))["state"] == "running"
        release.set()


@pytest.mark.parametrize(
    "path", ["/_tidegate/jobs/nope", "/_tidegate/jobs/orders.AAAAAAAAAAAAAAAAAAAAAAAA"]
)
async def test_unknown_jobs_are_404(gateway: RunningGateway, path: str) -> None:
    for suffix in ("", "/result", "/events"):
        async with gateway.http.get(gateway.url(path + suffix)) as r:
            assert r.status == 404
            await problem_of(r)


async def test_error_answers_are_problems(gateway: RunningGateway) -> None:
    async with gateway.http.post(gateway.url("/nowhere"), data=b"") as r:
        assert r.status == 404
        await problem_of(r)
    async with gateway.http.delete(gateway.url("/orders")) as r:  # method not routed
        assert r.status == 404
    async with gateway.http.post(gateway.url("/orders"), data=b"x" * 2000) as r:
        assert r.status == 413
        assert (await problem_of(r))["max_body_bytes"] == 1024
    async with gateway.http.post(
        gateway.url("/orders"), headers={"Idempotency-Key": "k" * 300}, data=b""
    ) as r:
        assert r.status == 400
    async with gateway.http.post(gateway.url("/orders"), headers={"X-Big": "v" * 20000}) as r:
        assert r.status == 431
        await problem_of(r)
    async with gateway.http.post(gateway.url("/_tidegate/jobs/x")) as r:
        assert r.status == 405
        await problem_of(r)
    rejected = gateway.gw.metrics.rejected
    assert rejected.labels("orders", "body_too_large")._value.get() == 1
    assert rejected.labels("", "headers_too_large")._value.get() == 1


async def test_admin_port(gateway: RunningGateway, relay_worker: Callable[..., Any]) -> None:
    async with gateway.http.post(gateway.url("/reports"), data=b"1") as r:
        assert r.status == 202
    async with gateway.http.get(gateway.admin_url("/status")) as r:
        routes = (await r.json())["routes"]
    assert routes["reports"]["waiting"] == 1
    assert routes["reports"]["source"] == "no-group"
    assert routes["reports"]["scaler"] is None  # no scaler has published a view
    assert routes["reads"]["mode"] == "proxy"
    async with gateway.http.get(gateway.admin_url("/healthz")) as r:
        assert r.status == 200

    async def ready() -> bool:
        async with gateway.http.get(gateway.admin_url("/readyz")) as r:
            return r.status == 200

    await wait_until(ready, what="/readyz")
    async with gateway.http.get(gateway.admin_url("/metrics")) as r:
        text = await r.text()
    assert 'tidegate_gateway_admitted_total{route="reports"} 1.0' in text
    assert "tidegate_gateway_admission_seconds_bucket" in text
    assert "tidegate_gateway_in_flight_requests" in text


async def test_status_history_hands_out_the_gateways_samples(gateway: RunningGateway) -> None:
    async def sampled() -> bool:
        async with gateway.http.get(gateway.admin_url("/status/history")) as r:
            assert r.status == 200
            return bool((await r.json())["routes"].get("reports", {}).get("t_s"))

    await wait_until(sampled, what="a first sample (taken when the gateway starts)")
    async with gateway.http.get(gateway.admin_url("/status/history")) as r:
        history = await r.json()
    assert history["window_s"] == 900
    assert history["interval_s"] == gateway.gw.settings.gateway.status_history_interval_s
    assert "reads" not in history["routes"]  # a proxy route queues nothing
    reports = history["routes"]["reports"]
    assert reports["backlog"][-1] == 0
    assert reports["desired_replicas"][-1] is None  # no scaler published
    newest = reports["t_s"][-1]
    async with gateway.http.get(
        gateway.admin_url("/status/history"), params={"since": str(newest)}
    ) as r:
        assert (await r.json())["routes"]["reports"]["t_s"] == []


@pytest.mark.parametrize(
    "since",
    ["abc", "nan", "NaN", "inf", "-Infinity", "", "1e999", "%00", "%ff%fe", "1,5", "0x10"],
)
async def test_status_history_refuses_a_since_that_is_no_time(
    gateway: RunningGateway, since: str
) -> None:
    url = gateway.admin_url("/status/history") + "?since=" + since
    async with gateway.http.get(URL(url, encoded=True)) as r:
        assert r.status == 400
        assert r.content_type == "application/problem+json"
        assert "unix seconds" in (await r.json())["detail"]


async def test_openapi_document_describes_the_job_api(gateway: RunningGateway) -> None:
    async with gateway.http.get(gateway.url("/_tidegate/openapi.json")) as r:
        assert r.status == 200
        doc = json.loads(await r.text())
    assert doc["openapi"].startswith("3.")
    for path in (
        "/_tidegate/jobs/{id}",
        "/_tidegate/jobs/{id}/result",
        "/_tidegate/jobs/{id}/events",
    ):
        assert path in doc["paths"]
        for operation in doc["paths"][path].values():
            if isinstance(operation, dict) and "responses" in operation:
                assert "401" in operation["responses"]  # with tenants configured
    assert "delete" in doc["paths"]["/_tidegate/jobs/{id}"]
