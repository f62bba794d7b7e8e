"""tidegate with Sentinel: the master is found through the sentinels, and
followed through a failover (the master killed with SIGKILL under load).

With ``replicas_ack: 1`` an admission is answered 202 only once a replica
has it, so every accepted job survives the promotion of that replica and
ends, exactly once. While the sentinels fail over, the gateway answers 503
with Retry-After (never 500), and the gateway and the worker resume on the
new master on their own.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Upstream, make_settings, running_gateway, running_worker
from tests.integration.topologies.failover import each_ended_once, under_load
from tests.redis_sentinel import MASTER_NAME, RedisSentinel
from tidegate.settings import Settings
from worker.relay import Relay


def sentinel_settings(setup: RedisSentinel, **route: Any) -> Settings:
    return make_settings(
        "redis://127.0.0.1/0",
        redis_mode="sentinel",
        redis_options={"sentinels": setup.sentinels, "sentinel_master": MASTER_NAME},
        **route,
    )


async def test_the_whole_path_through_sentinel(
    redis_sentinel: RedisSentinel, upstream: Upstream
) -> None:
    settings = sentinel_settings(redis_sentinel)
    async with (
        running_gateway(settings) as gateway,
        running_worker(settings, "orders", Relay(upstream.url, 2.0)),
        gateway.http.post(gateway.url("/orders"), data=b"two widgets") as r,
    ):
        assert r.status == 201, await r.text()
        job_id = r.headers["Tidegate-Job"]
        assert await gateway.job_state(job_id) == "succeeded"


async def test_a_killed_master_loses_no_acknowledged_job(
    redis_sentinel: RedisSentinel, upstream: Upstream
) -> None:
    settings = sentinel_settings(
        redis_sentinel,
        mode="async",
        replicas_ack=1,
        replicas_ack_timeout_s=1.0,
    )
    async with (
        running_gateway(settings) as gateway,
        running_worker(settings, "orders", Relay(upstream.url, 2.0)),
    ):

        async def fail_over() -> None:
            redis_sentinel.kill(redis_sentinel.master_port)

        accepted = await under_load(gateway, fail_over)
        await each_ended_once(settings, accepted)
