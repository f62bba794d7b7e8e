"""Redis faults get the right answer: full, slow (outcome unknown), keys gone;
and answers too large to store. Each against a real redis-server.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from gateway.app import build_apps
from tests.conftest import (
    RunningGateway,
    make_settings,
    running_gateway,
    running_worker,
    wait_until,
)
from tests.redis_server import RedisServer
from tests.tcp_proxy import ReplyDroppingProxy
from tidegate.envelope import Job, Reply
from tidegate.keys import GROUP, RouteKeys, new_job_id
from tidegate.ledger import Ledger
from tidegate.ledger.groups import ensure_group
from tidegate.settings import parse_settings
from worker.handler import Handler
from worker.relay import Relay


async def _fill(client: Redis) -> None:
    """Leave Redis over its maxmemory (noeviction): writes are refused until
    ``filler`` is deleted."""
    await client.set("filler", b"x" * (2 * 1024 * 1024))
    used = int((await client.info("memory"))["used_memory"])
    await client.config_set("maxmemory-policy", "noeviction")
    await client.config_set("maxmemory", str(used - 256 * 1024))


async def _ready(gateway: RunningGateway) -> tuple[int, Any]:
    async with gateway.http.get(gateway.admin_url("/readyz")) as r:
        return r.status, await r.json()


async def test_redis_full_is_503_with_retry_after_and_not_ready(own_redis: RedisServer) -> None:
    settings = make_settings(own_redis.url)
    client = Redis.from_url(own_redis.url)
    try:
        async with running_gateway(settings) as gateway:
            await _fill(client)
            for _ in range(3):
                async with gateway.http.post(gateway.url("/reports"), data=b"x") as r:
                    assert r.status == 503
                    assert r.headers["Retry-After"] == "1"
                    problem = await r.json(content_type="application/problem+json")
                    assert problem["type"].endswith("/redis-full")
                    assert "nothing was accepted" in problem["detail"]

            async def not_ready() -> bool:
                status, body = await _ready(gateway)
                return status == 503 and "Redis refuses writes (out of memory)" in body["reasons"]

            await wait_until(not_ready, what="/readyz to report writes refused")
            await client.delete("filler")

            async def ready() -> bool:
                return (await _ready(gateway))[0] == 200

            await wait_until(ready, what="/readyz to recover once memory is freed")
            async with gateway.http.post(gateway.url("/reports"), data=b"x") as r:
                assert r.status == 202
            metric = gateway.gw.metrics.rejected.labels("reports", "redis_full")
            assert metric._value.get() == 3
        assert await client.xlen(RouteKeys("reports").requests) == 1
    finally:
        await client.aclose()


async def test_workers_back_off_while_redis_is_full(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(own_redis.url)
    client = Redis.from_url(own_redis.url)
    upstream = TestServer(_service(b"done"), host="127.0.0.1")
    await upstream.start_server()
    try:
        ledger = Ledger(client, settings.routes)
        job = Job(new_job_id("orders"), "orders", "POST", "/orders")
        await ledger.admit(settings.route("orders"), job, None)
        await ensure_group(client, RouteKeys("orders").requests, GROUP)
        await _fill(client)
        relay = Relay(str(upstream.make_url("")).rstrip("/"), 2.0)
        async with running_worker(settings, "orders", relay) as worker:

            async def backing_off() -> bool:
                return "Redis refuses writes" in caplog.text and "retrying" in caplog.text

            await wait_until(backing_off, what="the worker to back off")
            assert not worker.task.done()
            assert (await ledger.projection(job.id))["state"] == "queued"
            await client.delete("filler")

            async def succeeded() -> bool:
                return (await ledger.projection(job.id))["state"] == "succeeded"

            await wait_until(succeeded, what="the job to run once memory is freed")
        assert "job task crashed" not in caplog.text
    finally:
        await upstream.close()
        await client.aclose()


async def test_an_unanswered_admission_is_outcome_unknown_with_the_job_id(
    redis_server: RedisServer, redis_url: str
) -> None:
    proxy = ReplyDroppingProxy(redis_server.port)
    await proxy.start()
    settings = parse_settings(
        {
            "redis": {"url": proxy.url, "socket_timeout_s": 0.3},
            "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"},
            "routes": [{"name": "reports", "match": {"path_prefix": "/reports"}, "mode": "async"}],
        },
        env={},
    )
    client = Redis.from_url(redis_url)
    try:
        async with running_gateway(settings) as gateway:
            # One admission answered first: the scripts are in Redis's cache (else
            # the call below could meet NOSCRIPT, run nothing, and lose that answer).
            async with gateway.http.post(gateway.url("/reports"), data=b"x") as r:
                assert r.status == 202
            # The script call reaches Redis and runs; its answer is lost on the way
            # back: the job exists, and the gateway cannot know it.
            proxy.drop_replies_after = b"EVALSHA"
            async with gateway.http.post(gateway.url("/reports"), data=b"x") as r:
                assert r.status == 503
                problem = await r.json(content_type="application/problem+json")
                location = r.headers["Location"]
                assert r.headers["Retry-After"] == "1"
            assert problem["type"].endswith("/outcome-unknown")
            assert "nothing was accepted" not in problem["detail"]
            assert location == problem["links"]["self"] == f"/_tidegate/jobs/{problem['job']}"
            proxy.drop_replies_after = None

            async def exists() -> bool:
                async with gateway.http.get(gateway.url(location)) as r:
                    return r.status == 200 and (await r.json())["state"] == "queued"

            await wait_until(exists, what="the job behind the lost answer to be found")
        assert await client.xlen(RouteKeys("reports").requests) == 2
    finally:
        await client.aclose()
        await proxy.close()


def _service(body: bytes) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


@pytest.mark.parametrize("fault", ["DEL", "FLUSHALL", "XGROUP DESTROY"])
async def test_a_worker_whose_stream_or_group_vanishes_keeps_serving(
    redis_url: str, fault: str
) -> None:
    settings = make_settings(redis_url, mode="async")
    ledger_client = Redis.from_url(redis_url)
    upstream = TestServer(_service(b"ok"), host="127.0.0.1")
    await upstream.start_server()
    ledger = Ledger(ledger_client, settings.routes)
    stream = RouteKeys("orders").requests
    try:
        relay = Relay(str(upstream.make_url("")).rstrip("/"), 2.0)
        async with running_worker(settings, "orders", relay) as worker:
            for round_ in range(3):
                job = Job(new_job_id("orders"), "orders", "POST", "/orders", body=b"%d" % round_)
                await ledger.admit(settings.route("orders"), job, None)

                async def done(job_id: str = job.id) -> bool:
                    return (await ledger.projection(job_id))["state"] == "succeeded"

                await wait_until(done, what=f"job of round {round_} to succeed")
                if fault == "DEL":
                    await ledger_client.delete(stream)
                elif fault == "FLUSHALL":
                    await ledger_client.flushall()
                else:
                    await ledger_client.xgroup_destroy(stream, GROUP)
                await asyncio.sleep(0)
            assert not worker.task.done()
    finally:
        await upstream.close()
        await ledger_client.aclose()


@pytest.mark.parametrize("executor", ["relay", "handler"])
async def test_an_oversized_answer_fails_the_job_and_is_not_stored(
    redis_url: str, executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        redis_url, mode="async", worker={"max_attempts": 3, "max_result_bytes": 4096}
    )
    big = b"z" * (10 * 1024 * 1024)
    client = Redis.from_url(redis_url)
    upstream = TestServer(_service(big), host="127.0.0.1")
    await upstream.start_server()

    async def handle(job: Job) -> Reply:
        return Reply(200, (), big)

    chosen = (
        Relay(str(upstream.make_url("")).rstrip("/"), 5.0, max_result_bytes=4096)
        if executor == "relay"
        else Handler(handle)
    )
    ledger = Ledger(client, settings.routes)
    job = Job(new_job_id("orders"), "orders", "POST", "/orders")
    try:
        await ledger.admit(settings.route("orders"), job, None)
        async with running_worker(settings, "orders", chosen):

            async def ended() -> bool:
                return (await ledger.projection(job.id))["state"] == "dead_lettered"

            await wait_until(ended, what="the job to fail for good")
        result = await ledger.result(job.id)
        assert result is not None
        assert result.status == 502
        assert "max_result_bytes (4096 bytes)" in json.loads(result.body)["detail"]
        assert (await ledger.projection(job.id))["attempts"] == "1"  # not retried
        stored = await client.memory_usage(RouteKeys("orders").result(job.id))
        assert stored is not None
        assert stored < 8192
    finally:
        await upstream.close()
        await client.aclose()
    logging.getLogger(__name__).debug("done")


@pytest.fixture
def demoted_master() -> Any:
    """A server that is a replica now (of a master that does not answer): what
    a client still holding a failed-over master's address reaches."""
    master = RedisServer()
    master.start()
    replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(master.port)))
    replica.start()
    master.stop()  # the replica stays one, with nobody to follow
    yield replica
    replica.close()
    master.close()


@pytest.mark.parametrize("replicas_ack", [0, 1])
async def test_a_demoted_master_answers_503_never_500(
    demoted_master: RedisServer, replicas_ack: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Writes reach a node that has just become a replica: its scripts answer
    READONLY and its WAIT an error. Both are 503 + Retry-After (the WAIT error
    was once a TypeError, a 500); status and readiness answer too."""
    settings = make_settings(
        demoted_master.url, mode="async", replicas_ack=replicas_ack, replicas_ack_timeout_s=0.2
    )
    async with running_gateway(settings) as gateway:
        for path in ("/orders", "/reports"):
            async with gateway.http.post(gateway.url(path), data=b"x") as r:
                assert r.status == 503, (path, await r.text())
                assert r.headers["Retry-After"]
                problem = await r.json(content_type="application/problem+json")
                assert "nothing was accepted" in problem["detail"] or "Not durable" in str(
                    problem
                ), problem
        async with gateway.http.get(gateway.admin_url("/status")) as r:
            assert r.status in (200, 503)
        async with gateway.http.get(gateway.admin_url("/readyz")) as r:
            assert r.status in (200, 503)
    assert "unexpected error" not in caplog.text


async def test_a_gateway_started_without_redis_says_so_once_per_change(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway that cannot reach Redis from its start logs it at WARNING at
    once, with what it does meanwhile (before, only a gateway that had seen
    Redis logged its loss); then once per change of state, not per check."""
    caplog.set_level(logging.INFO, logger="gateway.context")
    own_redis.password = "s3cret-in-url"  # the logged URL must not show it
    own_redis.stop()
    settings = make_settings(own_redis.url)
    public_app, admin_app = build_apps(settings)
    public = TestServer(public_app, host="127.0.0.1")
    admin = TestServer(admin_app, host="127.0.0.1")
    await public.start_server()
    await admin.start_server()

    def lines(text: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if text in r.getMessage()]

    try:
        await wait_until(lambda: bool(lines("Redis unreachable at")), what="the warning")
        (warning,) = lines("Redis unreachable at")
        assert warning.levelno == logging.WARNING
        message = warning.getMessage()
        assert "Admissions answer 503 with Retry-After 1 s" in message
        assert "s3cret-in-url" not in message
        own_redis.password = None
        own_redis.start()  # same port, no password: reachable again
        await wait_until(lambda: bool(lines("Redis reachable at")), what="the recovery")
        own_redis.stop()
        await wait_until(lambda: len(lines("Redis unreachable at")) == 2, what="the second loss")
        assert len(lines("Redis reachable at")) == 1
    finally:
        await admin.close()
        await public.close()


async def _forbid_scripts(client: Redis) -> str:
    """A user that may do everything but run scripts (an ACL gone wrong)."""
    await client.acl_setuser(
        "narrow",
        enabled=True,
        passwords=["+narrow-pass"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-evalsha", "-eval"],
    )
    return "narrow:narrow-pass@"


async def _wrong_type(client: Redis) -> str:
    """The route's request stream is a string (a key clash with another app)."""
    await client.set(RouteKeys("reports").requests, "not a stream")
    await client.set(RouteKeys("orders").requests, "not a stream")
    return ""


@pytest.mark.parametrize("break_it", [_forbid_scripts, _wrong_type])
async def test_an_error_reply_of_redis_is_503_never_500(
    redis_server: RedisServer,
    redis_url: str,
    break_it: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis answers an error no caller expects: the request gets 503 with
    Retry-After and a problem that says so; the operator gets an ERROR line
    saying what Redis answered. /status answers too."""
    client = Redis.from_url(redis_url)
    try:
        auth = await break_it(client)
        settings = make_settings(redis_url.replace("redis://", f"redis://{auth}"))
        async with running_gateway(settings) as gateway:
            for path in ("/reports", "/orders"):
                async with gateway.http.post(gateway.url(path), data=b"x") as r:
                    assert r.status == 503, await r.text()
                    assert r.headers["Retry-After"] == "1"
                    problem = await r.json(content_type="application/problem+json")
                    assert problem["type"].endswith("/redis-error")
            async with gateway.http.get(gateway.admin_url("/status")) as r:
                assert r.status in (200, 503)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert errors
        assert all("Redis answered an error" in r.getMessage() for r in errors)
        assert "unexpected error" not in caplog.text
    finally:
        await client.acl_deluser("narrow")
        await client.aclose()
