"""Admission through the gateway: sync and async routes, Prefer, idempotency,
batching, the body limit while streaming.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import RunningGateway, Upstream, running_worker, wait_until
from tests.integration.gateway.problems import (
    problem_of,
)
from tidegate.keys import RouteKeys
from tidegate.settings import Settings
from worker.relay import Relay


async def test_sync_request_returns_the_upstreams_answer(
    gateway: RunningGateway, upstream: Upstream, relay_worker: Callable[..., Any]
) -> None:
    async with (
        relay_worker(),
        gateway.http.post(
            gateway.url("/orders?x=1"),
            data=b"two widgets",
            headers={"X-Custom": "kept", "Connection": "keep-alive, X-Drop", "X-Drop": "no"},
        ) as r,
    ):
        assert r.status == 201
        order = await r.json()
        job_id = r.headers["Tidegate-Job"]
    assert order["payload"] == "two widgets"
    assert order["idempotency_key"] == job_id  # the job id is the upstream's Idempotency-Key
    assert upstream.state.keys_seen == [job_id]
    async with gateway.http.get(gateway.url(f"/_tidegate/jobs/{job_id}")) as r:
        view = await r.json()
    assert view["state"] == "succeeded"
    assert view["status"] == 201
    assert view["attempts"] == 1


async def test_relay_forwards_method_query_headers_and_forwarded_for(
    settings: Settings, gateway: RunningGateway
) -> None:
    seen: list[web.Request] = []
    bodies: list[bytes] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request)
        bodies.append(await request.read())
        return web.Response(status=200, text="ok", headers={"X-From-Upstream": "yes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    from tests.conftest import running_worker
    from worker.relay import Relay

    try:
        relay = Relay(str(server.make_url("")), 2.0)
        async with (
            running_worker(settings, "orders", relay),
            gateway.http.put(
                gateway.url("/orders/7?a=1&a=2"),
                data=b"body",
                headers={"X-Custom": "kept", "Connection": "X-Drop", "X-Drop": "gone"},
            ) as r,
        ):
            assert r.status == 200
            assert r.headers["X-From-Upstream"] == "yes"
            assert await r.text() == "ok"
    finally:
        await server.close()
    request = seen[0]
    assert (request.method, request.path, request.query_string) == ("PUT", "/orders/7", "a=1&a=2")
    assert bodies == [b"body"]
    assert request.headers["X-Custom"] == "kept"
    assert "X-Drop" not in request.headers
    assert request.headers["X-Forwarded-For"] == "127.0.0.1"
    assert request.headers["X-Forwarded-Proto"] == "http"
    assert request.headers["X-Forwarded-Host"].startswith("127.0.0.1:")
    assert request.headers["Idempotency-Key"].startswith("orders.")
    assert request.headers["Tidegate-Attempt"] == "1"


async def test_async_route_answers_202_and_the_job_api_redeems_it(
    gateway: RunningGateway, relay_worker: Callable[..., Any]
) -> None:
    async with gateway.http.post(gateway.url("/reports"), data=b"q3") as r:
        assert r.status == 202
        body = await r.json()
        location = r.headers["Location"]
        assert r.headers["Retry-After"] == "1"
    assert location == f"/_tidegate/jobs/{body['id']}"
    assert body["state"] == "queued"
    async with gateway.http.get(gateway.url(location + "/result")) as r:
        assert r.status == 202  # not done yet: no worker runs
    async with relay_worker("reports"):

        async def done() -> bool:
            return await gateway.job_state(body["id"]) == "succeeded"

        await wait_until(done, what="the report job to succeed")
    async with gateway.http.get(gateway.url(location + "/result")) as r:
        assert r.status == 201
        assert (await r.json())["payload"] == "q3"
    async with gateway.http.get(gateway.url(location + "/events")) as r:
        events = (await r.json())["events"]
    assert [e["type"] for e in events] == ["accepted", "started", "succeeded"]
    assert all(int(e["at_ms"]) > 0 for e in events)


async def test_prefer_respond_async_and_wait(
    gateway: RunningGateway, relay_worker: Callable[..., Any]
) -> None:
    async with gateway.http.post(
        gateway.url("/orders"), data=b"a", headers={"Prefer": "respond-async"}
    ) as r:
        assert r.status == 202
        assert r.headers["Preference-Applied"] == "respond-async"
    # No worker: a sync wait bounded by Prefer: wait runs out and answers 202.
    async with gateway.http.post(
        gateway.url("/orders"), data=b"b", headers={"Prefer": "wait=0.2"}
    ) as r:
        assert r.status == 202
        assert r.headers["Preference-Applied"] == "wait=0.2"
        job_id = (await r.json())["id"]
    assert gateway.gw.metrics.sync_waits.labels("orders", "timeout")._value.get() == 1
    async with relay_worker():
        async with gateway.http.post(
            gateway.url("/orders"), data=b"c", headers={"Prefer": "wait=5"}
        ) as r:
            assert r.status == 201
            assert r.headers["Preference-Applied"] == "wait=5"

        async def queued_one_done() -> bool:
            return await gateway.job_state(job_id) == "succeeded"

        await wait_until(queued_one_done, what="the timed-out job to be worked off")


async def test_idempotency_key_same_job_and_same_result(
    gateway: RunningGateway, upstream: Upstream, relay_worker: Callable[..., Any]
) -> None:
    headers = {"Idempotency-Key": "order-42"}
    async with relay_worker():
        async with gateway.http.post(gateway.url("/orders"), data=b"x", headers=headers) as r:
            first = (r.status, r.headers["Tidegate-Job"], await r.read())
        async with gateway.http.post(gateway.url("/orders"), data=b"x", headers=headers) as r:
            second = (r.status, r.headers["Tidegate-Job"], await r.read())
    assert first == second
    assert upstream.state.calls == 1  # the repeat did not run again
    async with gateway.http.post(gateway.url("/orders"), data=b"y", headers=headers) as r:
        assert r.status == 422
        assert first[1] in (await problem_of(r))["detail"]
    # A repeat while the first is still queued gets the same job id too.
    async with gateway.http.post(
        gateway.url("/reports"), data=b"r", headers={"Idempotency-Key": "k"}
    ) as r:
        one = (await r.json())["id"]
    async with gateway.http.post(
        gateway.url("/reports"), data=b"r", headers={"Idempotency-Key": "k"}
    ) as r:
        assert r.status == 202
        assert (await r.json())["id"] == one


async def test_chunked_body_over_the_limit_is_refused_while_streaming(
    gateway: RunningGateway, redis: Any
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 512  # no Content-Length: sent chunked

    async with gateway.http.post(gateway.url("/orders"), data=chunks()) as r:
        assert r.status == 413
    assert await redis.xlen(RouteKeys("orders").requests) == 0  # nothing admitted


async def test_admissions_are_coalesced_into_batches(gateway: RunningGateway) -> None:
    queue = gateway.gw.ledger.admissions
    assert queue is not None
    before = queue.batches

    async def one(i: int) -> int:
        async with gateway.http.post(gateway.url("/reports"), data=str(i).encode()) as r:
            return r.status

    statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert statuses == [202] * 200
    batches = queue.batches - before
    assert batches < 200  # concurrent admissions shared round trips
    assert await gateway.gw.ledger._redis.xlen(RouteKeys("reports").requests) == 200


async def test_a_wait_that_runs_out_says_the_jobs_real_state(
    gateway: RunningGateway, settings: Settings
) -> None:
    """The 202 after a sync wait gives the job's state at that moment: a job
    the service is working on is ``running``, not ``queued``."""
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await release.wait()
        return web.Response(status=201, text="done")

    app = web.Application()
    app.router.add_post("/{tail:.*}", slow)
    service = TestServer(app, host="127.0.0.1")
    await service.start_server()
    try:
        relay = Relay(str(service.make_url("")).rstrip("/"), 5.0)
        async with running_worker(settings, "orders", relay):
            pending = asyncio.create_task(
                gateway.http.post(gateway.url("/orders"), data=b"x", headers={"Prefer": "wait=1"})
            )
            await asyncio.wait_for(started.wait(), 10)
            answer = await pending
            assert answer.status == 202
            assert (await answer.json())["state"] == "running"
            release.set()
    finally:
        release.set()
        await service.close()
