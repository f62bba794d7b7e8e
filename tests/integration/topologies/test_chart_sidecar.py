"""The relay sidecar as the chart's README shows it, on the config the chart
renders, follows a Sentinel failover.

The sidecar mounts the chart's ConfigMap and takes only the Redis URL from
the Secret: Redis's mode and sentinels must come with the config, or a
worker copied from the docs runs as standalone and never sees the new
master. Here the README's container (its args, its one environment
variable) runs as a real ``tidegate worker`` process on the rendered
config, under load through a Sentinel failover.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from shell.local_redis import free_port
from tests.conftest import Upstream, running_gateway, wait_until
from tests.integration.packaging.chart import CHART, config_map, render
from tests.integration.topologies.failover import each_ended_once, under_load
from tests.redis_sentinel import MASTER_NAME, RedisSentinel
from tests.worker_processes import REPO
from tidegate.settings import parse_settings

CONFIG_PATH = "/etc/tidegate/tidegate.yaml"


def readme_pod() -> dict[str, Any]:
    """The pod spec of the chart README's sidecar example."""
    text = (CHART / "README.md").read_text()
    section = text.split("## Adding the relay sidecar to an application", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    pod: dict[str, Any] = yaml.safe_load(block.group(1))["spec"]["template"]["spec"]
    return pod


def readme_sidecar() -> dict[str, Any]:
    """The ``tidegate-worker`` container of the chart README's example."""
    (sidecar,) = [c for c in readme_pod()["containers"] if c["name"] == "tidegate-worker"]
    found: dict[str, Any] = sidecar
    return found


def test_the_readme_sidecar_is_probed_over_http_not_by_exec() -> None:
    """An exec of ``tidegate worker --check`` starts a Python process per
    probe; the worker's own HTTP port answers /healthz."""
    sidecar = readme_sidecar()
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    args = sidecar["args"]
    assert args[args.index("--metrics-listen") + 1].endswith(f":{ports['metrics']}")
    for probe in ("startupProbe", "livenessProbe"):
        assert sidecar[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert "exec" not in sidecar[probe]


def test_the_readme_workers_drain_within_their_pods_grace() -> None:
    """Jobs in flight get ``--grace-s`` on SIGTERM; the pod's grace period
    must be longer, or the kubelet kills the worker mid-drain."""
    args = readme_sidecar()["args"]
    grace_s = float(args[args.index("--grace-s") + 1])
    assert grace_s + 3 <= readme_pod()["terminationGracePeriodSeconds"]


def test_the_readme_sidecar_takes_only_the_url_from_the_environment() -> None:
    sidecar = readme_sidecar()
    assert [e["name"] for e in sidecar["env"]] == ["TIDEGATE_REDIS_URL"]
    assert {"name": "tidegate-config", "mountPath": "/etc/tidegate", "readOnly": True} in sidecar[
        "volumeMounts"
    ]


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
    env = {"TIDEGATE_REDIS_URL": "redis://127.0.0.1:1/0"}
    sidecar = readme_sidecar()
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
