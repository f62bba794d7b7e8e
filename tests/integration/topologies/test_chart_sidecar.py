"""The relay sidecar the chart renders (``workers``), on the config the
chart renders, follows a Sentinel failover.

The sidecar mounts the chart's ConfigMap and takes only the Redis URL from
the Secret: Redis's mode and sentinels must come with the config, or a
worker runs as standalone and never sees the new master. Here the rendered
``tidegate-worker`` container (its args, its environment) runs as a real
``tidegate worker`` process on the rendered config, under load through a
Sentinel failover.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from shell.local_redis import free_port
from tests.conftest import Upstream, running_gateway, wait_until
from tests.integration.packaging.chart import config_map, render
from tests.integration.topologies.failover import each_ended_once, under_load
from tests.redis_sentinel import MASTER_NAME, RedisSentinel
from tests.worker_processes import REPO
from tidegate.settings import parse_settings

CONFIG_PATH = "/etc/tidegate/tidegate.yaml"


WORKER = {"name": "orders", "route": "orders", "service": {"image": "example/orders", "port": 8000}}


def rendered_sidecar(values: dict[str, Any]) -> dict[str, Any]:
    """The ``tidegate-worker`` container of the chart's worker Deployment."""
    (deployment,) = [
        d
        for d in render({**values, "workers": [WORKER]})
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]
    (sidecar,) = [
        c
        for c in deployment["spec"]["template"]["spec"]["containers"]
        if c["name"] == "tidegate-worker"
    ]
    found: dict[str, Any] = sidecar
    return found


def test_the_sidecar_takes_only_the_url_from_a_secret() -> None:
    """The URL (which may hold a password) is the one value from a Secret;
    the rest of its environment is plain, and the same as the config's."""
    env = rendered_sidecar({})["env"]
    secret = [e["name"] for e in env if "valueFrom" in e]
    assert secret == ["TIDEGATE_REDIS_URL"]
    assert {e["name"] for e in env} == {
        "TIDEGATE_REDIS_URL",
        "TIDEGATE_REDIS_MODE",
        "TIDEGATE_LOG_LEVEL",
        "TIDEGATE_LOG_FORMAT",
    }


async def test_a_sidecar_on_the_charts_config_follows_a_sentinel_failover(
    tmp_path: Path, redis_sentinel: RedisSentinel, upstream: Upstream
) -> None:
    values = {
        "redis": {
            "mode": "sentinel",
            "sentinels": redis_sentinel.sentinels,
            "sentinelMaster": MASTER_NAME,
        },
        "routes": [
            {
                "name": "orders",
                "match": {"path_prefix": "/orders"},
                "mode": "async",
                "replicas_ack": 1,
                "replicas_ack_timeout_s": 1.0,
            }
        ],
    }
    rendered = config_map(render(values))["data"]["tidegate.yaml"]
    config = tmp_path / "tidegate.yaml"
    config.write_text(rendered)
    # The Secret's URL: in sentinel mode only its password, database and TLS count.
    secret = {"TIDEGATE_REDIS_URL": "redis://127.0.0.1:1/0"}
    sidecar = rendered_sidecar(values)
    env = {e["name"]: e.get("value") or secret[e["name"]] for e in sidecar["env"]}
    probe_port = free_port()
    args = [
        {
            CONFIG_PATH: str(config),
            "http://127.0.0.1:8000": upstream.url,
            "0.0.0.0:9091": f"127.0.0.1:{probe_port}",
        }.get(arg, arg)
        for arg in sidecar["args"]
    ]
    assert args[0] == "worker"
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tidegate",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("wb"),
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
    )
    settings = parse_settings(yaml.safe_load(rendered), env=env)
    gateway_settings = parse_settings(
        {**yaml.safe_load(rendered), "gateway": {"listen": "127.0.0.1:0"}}, env=env
    )
    try:
        async with running_gateway(gateway_settings) as gateway:
            probe = f"http://127.0.0.1:{probe_port}/healthz"  # as the liveness probe asks

            async def alive() -> bool:
                try:
                    async with gateway.http.get(probe) as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(alive, 30, what="the sidecar's /healthz")

            async def fail_over() -> None:
                redis_sentinel.kill(redis_sentinel.master_port)

            accepted = await under_load(gateway, fail_over)
            await each_ended_once(settings, accepted)
    finally:
        worker.terminate()
        assert await asyncio.wait_for(worker.wait(), 60) == 0, (tmp_path / "worker.log").read_text()
