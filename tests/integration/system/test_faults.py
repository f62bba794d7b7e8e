"""Redis stopped mid-run: the gateway answers 503 fast and recovers by itself;
workers back off and resume; nothing accepted is lost (appendonly)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.conftest import make_settings, running_gateway, running_worker, wait_until
from tests.redis_server import RedisServer
from tidegate.keys import RouteKeys
from worker.relay import Relay


async def test_gateway_answers_503_while_redis_is_down_and_recovers(own_redis: RedisServer) -> None:
    settings = make_settings(own_redis.url)
    async with running_gateway(settings) as gateway:
        async with gateway.http.post(gateway.url("/reports"), data=b"before") as r:
            assert r.status == 202
            before = (await r.json())["id"]
        own_redis.stop()

        # Answered at once: a hang would hit this bound and fail the test. A
        # pooled connection may be used once before the client has seen the
        # server close it: that admission was sent, so its outcome is unknown
        # (never "nothing was accepted"); the next one is refused unsent.
        quick = aiohttp.ClientTimeout(total=5)
        kinds = []
        for _ in range(2):
            async with gateway.http.post(
                gateway.url("/reports"), data=b"during", timeout=quick
            ) as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "1"
                body = await r.json(content_type="application/problem+json")
                kinds.append(body["type"].rsplit("/", 1)[1])
            if kinds[-1] == "redis-unavailable":
                break
        assert kinds in (["redis-unavailable"], ["outcome-unknown", "redis-unavailable"])
        async with gateway.http.get(gateway.url(f"/_tidegate/jobs/{before}")) as r:
            assert r.status == 503
        async with gateway.http.get(gateway.admin_url("/status")) as r:
            assert r.status == 503

        async def not_ready() -> bool:
            async with gateway.http.get(gateway.admin_url("/readyz")) as r:
                return r.status == 503

        await wait_until(not_ready, what="/readyz to report Redis down")
        rejected = gateway.gw.metrics.rejected.labels("reports", "redis_unavailable")
        assert rejected._value.get() >= 1

        own_redis.start()  # appendonly: the admitted job survives the restart

        async def admits_again() -> bool:
            async with gateway.http.post(gateway.url("/reports"), data=b"after") as r:
                return r.status == 202

        await wait_until(admits_again, what="admission to recover")
        async with gateway.http.get(gateway.url(f"/_tidegate/jobs/{before}")) as r:
            assert r.status == 200
            assert (await r.json())["state"] == "queued"

        async def ready() -> bool:
            async with gateway.http.get(gateway.admin_url("/readyz")) as r:
                return r.status == 200

        await wait_until(ready, what="/readyz to recover")


async def test_sync_waiters_survive_a_redis_restart(own_redis: RedisServer, upstream: Any) -> None:
    """A result published while the subscription was down is still delivered.

    The route waits 20 s (not the usual 5): what is tested is the delivery
    after the restart, not how fast a restarted server and a new worker
    come up on a loaded machine (Valkey, reloading its append-only file,
    once took longer than 5 s here)."""
    settings = make_settings(own_redis.url, wait_s=20)
    async with running_gateway(settings) as gateway:
        request = asyncio.create_task(
            gateway.http.post(gateway.url("/orders"), data=b"x", headers={"Prefer": "wait=30"})
        )
        from redis.asyncio import Redis

        probe = Redis.from_url(own_redis.url)

        async def admitted() -> bool:
            return bool(await probe.xlen(RouteKeys("orders").requests))

        await wait_until(admitted, what="the job to be admitted")
        await probe.aclose()
        own_redis.stop()
        own_redis.start()
        async with running_worker(settings, "orders", Relay(upstream.url, 2.0)):
            response: aiohttp.ClientResponse = await asyncio.wait_for(request, 30)
            assert response.status == 201
            response.release()


async def test_worker_resumes_after_redis_restart(own_redis: RedisServer, upstream: Any) -> None:
    settings = make_settings(own_redis.url)
    async with (
        running_gateway(settings) as gateway,
        running_worker(settings, "reports", Relay(upstream.url, 2.0)) as worker,
    ):
        async with gateway.http.post(gateway.url("/reports"), data=b"1") as r:
            first = (await r.json())["id"]

        async def first_done() -> bool:
            return await gateway.job_state(first) == "succeeded"

        await wait_until(first_done, what="the first job")
        own_redis.stop()

        async def worker_saw_outage() -> bool:
            return any(reader.failures for reader in worker.consumer.readers)

        await wait_until(worker_saw_outage, what="the worker to meet the outage")
        assert not worker.task.done()  # backing off, not crashed
        own_redis.start()

        async def admitted() -> str:
            async with gateway.http.post(gateway.url("/reports"), data=b"2") as r:
                return str((await r.json())["id"]) if r.status == 202 else ""

        second = ""

        async def admit() -> bool:
            nonlocal second
            second = await admitted()
            return bool(second)

        await wait_until(admit, what="admission after the restart")

        async def second_done() -> bool:
            return await gateway.job_state(second) == "succeeded"

        await wait_until(second_done, timeout_s=20, what="the worker to resume")


async def test_replicas_ack_holds_the_answer_until_replicated(own_redis: RedisServer) -> None:
    """With replicas_ack: 1, a 202 means a replica has the job too (WAIT)."""
    settings = make_settings(own_redis.url, replicas_ack=1, replicas_ack_timeout_s=0.2)
    async_only = {"Prefer": "respond-async", "Idempotency-Key": "order-1"}
    async with running_gateway(settings) as gateway:
        async with gateway.http.post(gateway.url("/orders"), data=b"x", headers=async_only) as r:
            assert r.status == 503  # no replica: not durable enough yet
            body = await r.json(content_type="application/problem+json")
            assert body["type"].endswith("/not-replicated")
            assert r.headers["Retry-After"] == "1"
        replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(own_redis.port)))
        replica.start()
        try:
            from redis.asyncio import Redis

            primary = Redis.from_url(own_redis.url)

            async def replica_in_sync() -> bool:
                info = await primary.info("replication")
                return bool(info.get("connected_slaves")) and "online" in str(info.get("slave0"))

            await wait_until(replica_in_sync, timeout_s=20, what="the replica to sync")
            await primary.aclose()
            async with gateway.http.post(
                gateway.url("/orders"), data=b"x", headers=async_only
            ) as r:
                assert r.status == 202  # the retry with its key finds the same job
                job_id = (await r.json())["id"]
            replica_client = Redis.from_url(replica.url)
            assert await replica_client.exists(RouteKeys("orders").job(job_id))
            await replica_client.aclose()
        finally:
            replica.close()
