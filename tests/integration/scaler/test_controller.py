"""The controller: BacklogScaler resources, the watch, scaler processes sharing a Lease."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis

from scaler.controller import Controller
from scaler.kube import Kube
from scaler.metrics import ScalerMetrics
from tests.conftest import wait_until
from tests.fake_kube import FakeKube
from tests.integration.scaler.helpers import (
    DEPLOY,
    NS,
    SCALER_CMD,
    add_entries,
    controller_settings,
)
from tidegate.keys import Layout, parts_of
from tidegate.ledger import throttle_record
from tidegate.ledger.store import Store


async def test_backlog_scalers_get_status_events_and_problems_reported(
    fake: FakeKube, kube: Kube, redis: Redis, redis_url: str
) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=0)
    spec = {"route": "orders", "target": {"name": DEPLOY}, "max_replicas": 3, "interval_s": 0.05}
    fake.add_scaler(NS, "orders", spec)
    fake.add_scaler(NS, "orders-again", spec)  # a second one for the same route
    fake.add_scaler(NS, "broken", {"route": "reports", "max_replicas": "many"})
    fake.add_scaler(NS, "nowhere", {"route": "reports", "target": {"name": "missing"}})
    await add_entries(redis, 1000)
    controller = Controller(
        controller_settings(redis_url), "unused.yaml", Store(redis), kube, ScalerMetrics()
    )
    try:
        await controller.sync()
        assert set(controller.loops) == {"orders", "reports"}

        def status(name: str) -> dict[str, Any]:
            return dict(fake.scalers[(NS, name)].get("status") or {})

        def conditions(name: str) -> dict[str, tuple[str, str]]:
            return {
                c["type"]: (c["status"], c["reason"]) for c in status(name).get("conditions", [])
            }

        async def settled() -> bool:
            # Throttled once its 3 replicas are up (scaling from zero is not
            # exhaustion), not at the first step.
            throttled = conditions("orders").get("Throttled", ("", ""))[0] == "True"
            return (
                status("orders").get("desiredReplicas") == 3
                and bool(status("nowhere"))
                and throttled
            )

        await wait_until(settled, what="status written")
        assert fake.replicas(NS, DEPLOY) == 3
        orders = status("orders")
        assert orders["lag"] == 1000
        assert orders["observedGeneration"] == 1
        assert conditions("orders") == {
            "Active": ("True", "Scaling"),
            "Exhausted": ("True", "AboveMaxReplicas"),  # 10 needed, 3 allowed
            "MetricsAvailable": ("True", "Measured"),
            # At its maximum and nothing drains (no worker consumes here): the
            # front door is throttled at the minimum rate.
            "Throttled": ("True", "ScalingExhausted"),
        }
        assert conditions("orders-again") == {"Active": ("False", "Conflict")}
        assert conditions("broken") == {"Active": ("False", "InvalidSpec")}
        assert "max_replicas" in status("broken")["conditions"][0]["message"]
        assert conditions("nowhere")["Active"] == ("False", "TargetMissing")
        writes = len([r for r in fake.requests if r.path.endswith("/broken/status")])
        await controller.sync()
        rewrites = len([r for r in fake.requests if r.path.endswith("/broken/status")])
        assert rewrites == writes  # a problem reported once is not written at every resync
        scaled = [e for e in fake.events if e["reason"] == "Scaled"]
        assert scaled
        assert scaled[0]["involvedObject"]["name"] == "orders"
        assert "from 0 to 3" in scaled[0]["message"]

        # A changed spec restarts the route's loop with the new settings.
        fake.update_scaler_spec(NS, "orders", {**spec, "max_replicas": 6})
        await controller.sync()
        await wait_until(lambda: fake.replicas(NS, DEPLOY) == 6, what="rescaled to the new maximum")
        # A deleted resource stops its loop.
        fake.delete_scaler(NS, "orders")
        fake.delete_scaler(NS, "orders-again")
        await controller.sync()
        assert "orders" not in controller.loops
    finally:
        for route in list(controller.loops):
            await controller._stop(route)


async def test_a_partitioned_route_is_scaled_on_its_summed_lag(
    fake: FakeKube, kube: Kube, redis: Redis, redis_url: str
) -> None:
    """A BacklogScaler for a route the config file does not hold names its
    partitions: the lag of all three counts, and the throttle covers all three."""
    fake.add_deployment(NS, DEPLOY, replicas=0)
    spec = {
        "route": "bulk",
        "partitions": 3,
        "target": {"name": DEPLOY},
        "max_replicas": 2,
        "interval_s": 0.05,
    }
    fake.add_scaler(NS, "bulk", spec)
    parts = parts_of(Layout("bulk", 3))
    for n, keys in zip((100, 200, 300), parts, strict=True):
        await add_entries(redis, n, "bulk", keys)
    controller = Controller(
        controller_settings(redis_url), "unused.yaml", Store(redis), kube, ScalerMetrics()
    )
    try:
        await controller.sync()

        async def throttled() -> bool:
            status = fake.scalers[(NS, "bulk")].get("status") or {}
            return status.get("lag") == 600 and all(
                [await redis.exists(keys.throttle) for keys in parts]
            )

        await wait_until(throttled, what="the summed lag reported and every partition throttled")
        assert fake.replicas(NS, DEPLOY) == 2
        state = await throttle_record.Throttles(redis).read(Layout("bulk", 3))
        assert state is not None
        assert state.reason == "max_replicas"
    finally:
        for route in list(controller.loops):
            await controller._stop(route)


async def test_backlog_scalers_are_picked_up_through_the_watch(
    fake: FakeKube, kube: Kube, redis: Redis, redis_url: str
) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=0)
    # A resync far away: only the watch can bring changes in during this test.
    settings = controller_settings(redis_url, resync_s=3600)
    controller = Controller(settings, "unused.yaml", Store(redis), kube, ScalerMetrics())
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    spec = {"route": "orders", "target": {"name": DEPLOY}, "max_replicas": 3}

    def max_replicas() -> int | None:
        entry = controller.loops.get("orders")
        return entry[1].settings.max_replicas if entry else None

    try:
        await wait_until(lambda: controller.synced, what="the first sync")
        assert controller.loops == {}
        fake.add_scaler(NS, "orders", spec)
        await wait_until(lambda: max_replicas() == 3, what="the new resource")
        fake.update_scaler_spec(NS, "orders", {**spec, "max_replicas": 5})
        await wait_until(lambda: max_replicas() == 5, what="the changed spec")
        fake.delete_scaler(NS, "orders")
        await wait_until(lambda: max_replicas() is None, what="the deletion")
        lists = [r for r in fake.requests if r.path.endswith("/backlogscalers")]
        assert len(lists) < 20  # status writes did not trigger a list each
    finally:
        stop.set()
        await task


def _scaler_process(config: Path, kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [*SCALER_CMD, "-c", str(config), "--kubeconfig", str(kubeconfig)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


async def test_two_scaler_processes_hand_the_lease_over(
    fake: FakeKube, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=0)
    config = tmp_path / "tidegate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "redis": {"url": redis_url},
                "scaler": {
                    "lease_namespace": NS,
                    "lease_duration_s": 3,
                    "renew_deadline_s": 2,
                    "retry_period_s": 0.2,
                    "admin_listen": "127.0.0.1:0",
                },
                "routes": [
                    {
                        "name": "orders",
                        "match": {"path_prefix": "/orders"},
                        "scaler": {
                            "target": {"kind": "deployment", "namespace": NS, "name": DEPLOY},
                            "interval_s": 0.1,
                            "scale_down_window_s": 0,
                        },
                    }
                ],
            }
        )
    )
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    procs = [_scaler_process(config, kubeconfig, tmp_path / f"scaler{i}.log") for i in range(2)]
    try:

        def holder() -> str | None:
            lease = fake.leases.get((NS, "tidegate-scaler"))
            return lease["spec"].get("holderIdentity") if lease else None

        await wait_until(lambda: holder() is not None, 20, "a leader")
        first = holder()
        assert first is not None
        await add_entries(redis, 250)
        await wait_until(lambda: fake.replicas(NS, DEPLOY) == 3, 20, "scaled up")

        leader = next(p for p in procs if first.endswith(f"-{p.pid}"))
        leader.send_signal(signal.SIGKILL)  # no release: the standby waits out the lease
        leader.wait()
        await wait_until(lambda: holder() not in (None, first), 20, "a new leader")
        await add_entries(redis, 250)
        await wait_until(lambda: fake.replicas(NS, DEPLOY) == 5, 20, "scaled by it")
        assert fake.leases[(NS, "tidegate-scaler")]["spec"]["leaseTransitions"] >= 1

        standby = next(p for p in procs if p is not leader)
        standby.send_signal(signal.SIGTERM)  # a clean stop releases the lease
        assert await asyncio.to_thread(standby.wait, 20) == 0
        assert holder() is None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = "".join((tmp_path / f"scaler{i}.log").read_text() for i in range(2))
    assert "now the leader" in logs
    assert "Traceback" not in logs


def test_scaler_command_says_what_is_wrong_with_a_kubeconfig(tmp_path: Path) -> None:
    config = tmp_path / "tidegate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "routes": [
                    {
                        "name": "orders",
                        "match": {"path_prefix": "/orders"},
                        "scaler": {"target": {"kind": "deployment", "namespace": NS, "name": "w"}},
                    }
                ]
            }
        )
    )
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [")
    for kubeconfig in (tmp_path / "missing", broken):
        result = subprocess.run(
            [*SCALER_CMD, "-c", str(config), "--kubeconfig", str(kubeconfig)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert f"kubernetes: cannot load {kubeconfig}" in result.stderr
        assert "Traceback" not in result.stderr
