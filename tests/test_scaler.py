"""The scaler against real Redis and a fake Kubernetes API server.

The real ``kubernetes`` client talks to ``tests.fake_kube`` through a
kubeconfig. Control steps are driven one at a time with a fake clock, so no
assertion depends on timing; the end-to-end tests run ``tidegate scaler``
processes and wait for observable state.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis

from scaler.controller import Controller
from scaler.deployment import DeploymentActuator
from scaler.kube import Kube, KubeError, load_api_client
from scaler.lease import LeaderElector, LeaseSettings
from scaler.local import LocalActuator
from scaler.metrics import ScalerMetrics
from scaler.resources import emit_event, patch_status
from scaler.route_loop import RouteLoop
from tests.conftest import wait_until
from tests.fake_kube import FakeKube
from tidegate.keys import GROUP, RouteKeys
from tidegate.ledger import scaler_view, throttle
from tidegate.ledger.client import connect
from tidegate.ledger.groups import ensure_group
from tidegate.settings import (
    RedisSettings,
    ScalerSettings,
    Settings,
    TargetSettings,
    ThrottleSettings,
    parse_settings,
)
from tidegate.shell.local_redis import free_port
from tidegate.throttle import Throttle

NS, DEPLOY = "shop", "orders-worker"
SCALER_CMD = [sys.executable, "-m", "tidegate", "scaler"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeKube]:
    server = FakeKube()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def kube(fake: FakeKube, tmp_path: Path) -> Kube:
    return Kube(load_api_client(str(fake.kubeconfig(tmp_path / "kubeconfig"))), timeout_s=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scaler_settings(**overrides: Any) -> ScalerSettings:
    values: dict[str, Any] = {
        "target": TargetSettings(kind="deployment", namespace=NS, name=DEPLOY),
        "max_replicas": 10,
        "lag_per_replica": 100,
        "scale_down_window_s": 10,
        "interval_s": 1,
    }
    values.update(overrides)
    return ScalerSettings(**values)


def route_loop(
    kube: Kube, redis: Redis, clock: Clock, settings: ScalerSettings | None = None, **kw: Any
) -> RouteLoop:
    return RouteLoop(
        "orders",
        settings or scaler_settings(),
        DeploymentActuator(kube, NS, DEPLOY),
        redis,
        ScalerMetrics(),
        clock=clock,
        **kw,
    )


async def add_entries(redis: Redis, n: int, route: str = "orders") -> None:
    stream = RouteKeys(route).requests
    await ensure_group(redis, stream, GROUP)
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.xadd(stream, {"job": f"{route}.{i}"})
        await pipe.execute()


async def drain_all(redis: Redis, route: str = "orders") -> None:
    stream = RouteKeys(route).requests
    reply: Any = await redis.xreadgroup(GROUP, "w", {stream: ">"}, count=100_000)
    ids = [entry_id for entry_id, _ in reply[0][1]] if reply else []
    if ids:
        await redis.xack(stream, GROUP, *ids)


async def test_scales_up_on_backlog_down_after_the_window_and_to_zero(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=0)
    clock = Clock()
    loop = route_loop(kube, redis, clock)

    first = await loop.step()
    assert first.wrote is None  # nothing to do
    assert fake.replicas(NS, DEPLOY) == 0

    await add_entries(redis, 1)  # activation: the first entry asks for one replica
    clock.now += 1
    assert (await loop.step()).wrote == 1
    await add_entries(redis, 449)
    clock.now += 1
    assert (await loop.step()).wrote == 5  # ceil(450 / 100) before a service rate is known
    busy = await scaler_view.read(redis, "orders")
    assert busy is not None
    assert busy.waiting == 450
    assert busy.oldest_waiting_age_s is not None  # from the oldest entry's id
    assert busy.oldest_waiting_age_s >= 0
    assert fake.replicas(NS, DEPLOY) == 5
    put = fake.scale_writes()[-1]
    assert put.body["metadata"]["resourceVersion"]  # replace with the version read
    assert put.body["spec"] == {"replicas": 5}

    await drain_all(redis)
    held = []
    for _ in range(12):
        clock.now += 1
        held.append((await loop.step()).replicas)
    assert fake.replicas(NS, DEPLOY) == 0  # idle past the 10 s window
    assert [r.desired for r in held[:8] if r] == [5] * 8  # held while the window remembers
    view = await scaler_view.read(redis, "orders")
    assert view is not None
    assert view.desired_replicas == 0
    assert view.oldest_waiting_age_s is None  # nothing waits
    assert view.target == f"deployment {NS}/{DEPLOY}"
    # Only the scale subresource was ever written.
    writes = [r for r in fake.requests if r.method != "GET"]
    assert writes
    assert all(r.path.endswith("/scale") for r in writes)


async def test_a_conflicting_writer_is_read_again_and_retried(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=1)
    fake.conflict_scale_writes(2)
    loop = route_loop(kube, redis, Clock())
    await add_entries(redis, 300)
    result = await loop.step()
    assert result.wrote == 3
    assert fake.replicas(NS, DEPLOY) == 3
    assert isinstance(loop.actuator, DeploymentActuator)
    assert loop.actuator.conflicts == 2
    assert len(fake.scale_writes()) == 3


async def test_api_errors_back_off_honour_retry_after_and_hold(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=2)
    await add_entries(redis, 900)
    clock = Clock()
    loop = route_loop(kube, redis, clock)

    fake.fail("GET", r"/deployments/orders-worker$", 429, retry_after_s=7)
    throttled = await loop.step()
    assert throttled.retry_after_s is not None
    assert throttled.retry_after_s >= 7
    assert "429" in (throttled.problem or "")

    fake.fail("PUT", r"/scale$", 403)
    clock.now += 1
    forbidden = await loop.step()
    assert forbidden.wrote is None
    assert "403" in (forbidden.problem or "")
    assert fake.replicas(NS, DEPLOY) == 2  # nothing changed while the API failed
    errors = loop.metrics.api_errors
    assert errors.labels("orders", "429")._value.get() == 1
    assert errors.labels("orders", "403")._value.get() == 1

    clock.now += 1
    assert (await loop.step()).wrote == 9  # the API recovered: scaled
    assert loop.api_failures == 0


async def test_redis_down_holds_replicas_then_the_fallback(fake: FakeKube, kube: Kube) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=4)
    down = connect(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"))
    clock = Clock()
    loop = route_loop(
        kube, down, clock, scaler_settings(fallback_replicas=2, failures_before_fallback=3)
    )
    try:
        for _ in range(2):
            clock.now += 1
            result = await loop.step()
            assert result.wrote is None
            assert result.decision is not None
            assert result.decision.reason == "hold: backlog unknown"
        assert fake.replicas(NS, DEPLOY) == 4  # never scaled down because measuring failed
        clock.now += 1
        assert (await loop.step()).wrote == 2  # the third failure in a row: fallback
        assert loop.metrics.measure_failures.labels("orders")._value.get() == 3
    finally:
        await down.aclose()


async def test_a_new_leader_adopts_and_lifts_a_throttle_set_before(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=2)
    old = Throttle(5.0, 10, "max_replicas", "set by the previous leader", time.time(), 429)
    await throttle.apply(redis, "orders", old, ttl_s=60, announce=True)
    clock = Clock()  # and the route has recovered: nothing waits
    settings = scaler_settings(throttle=ThrottleSettings(hold_s=2, low_water_s=5))
    loop = route_loop(kube, redis, clock, settings)
    await loop.step()
    assert loop.throttle is not None  # adopted, not ignored until it expires
    assert abs(loop.throttle.since_s - old.since_s) < 0.01  # the same throttle, re-rated
    assert await throttle.read(redis, "orders") is not None
    for _ in range(3):
        clock.now += 1
        await loop.step()
    assert await throttle.read(redis, "orders") is None  # lifted by the same rules
    assert loop.throttle is None


async def test_standby_samples_but_never_writes(fake: FakeKube, kube: Kube, redis: Redis) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=1)
    await add_entries(redis, 500)
    loop = route_loop(kube, redis, Clock(), is_leader=lambda: False)
    result = await loop.step()
    assert result.decision is not None
    assert result.decision.replicas == 5
    assert result.wrote is None
    assert fake.replicas(NS, DEPLOY) == 1
    assert fake.scale_writes() == []


def controller_settings(redis_url: str, **scaler: Any) -> Settings:
    return parse_settings(
        {
            "redis": {"url": redis_url},
            "scaler": {"namespaces": [NS], "admin_listen": "127.0.0.1:0", **scaler},
            "routes": [
                {"name": "orders", "match": {"path_prefix": "/orders"}},
                {"name": "reports", "match": {"path_prefix": "/reports"}},
            ],
        }
    )


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
        controller_settings(redis_url), "unused.yaml", redis, kube, ScalerMetrics()
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
            return status("orders").get("desiredReplicas") == 3 and bool(status("nowhere"))

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
        await wait_until(
            lambda: _true(fake.replicas(NS, DEPLOY) == 6), what="rescaled to the new maximum"
        )
        # A deleted resource stops its loop.
        fake.delete_scaler(NS, "orders")
        fake.delete_scaler(NS, "orders-again")
        await controller.sync()
        assert "orders" not in controller.loops
    finally:
        for route in list(controller.loops):
            await controller._stop(route)


async def _true(value: bool) -> bool:
    return value


async def test_backlog_scalers_are_picked_up_through_the_watch(
    fake: FakeKube, kube: Kube, redis: Redis, redis_url: str
) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=0)
    # A resync far away: only the watch can bring changes in during this test.
    settings = controller_settings(redis_url, resync_s=3600)
    controller = Controller(settings, "unused.yaml", redis, kube, ScalerMetrics())
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    spec = {"route": "orders", "target": {"name": DEPLOY}, "max_replicas": 3}

    def max_replicas() -> int | None:
        entry = controller.loops.get("orders")
        return entry[1].settings.max_replicas if entry else None

    try:
        await wait_until(lambda: _true(controller.synced), what="the first sync")
        assert controller.loops == {}
        fake.add_scaler(NS, "orders", spec)
        await wait_until(lambda: _true(max_replicas() == 3), what="the new resource")
        fake.update_scaler_spec(NS, "orders", {**spec, "max_replicas": 5})
        await wait_until(lambda: _true(max_replicas() == 5), what="the changed spec")
        fake.delete_scaler(NS, "orders")
        await wait_until(lambda: _true(max_replicas() is None), what="the deletion")
        lists = [r for r in fake.requests if r.path.endswith("/backlogscalers")]
        assert len(lists) < 20  # status writes did not trigger a list each
    finally:
        stop.set()
        await task


async def test_lease_only_one_leader_takeover_after_expiry_and_release(
    fake: FakeKube, kube: Kube
) -> None:
    clock_a, clock_b = Clock(), Clock()
    a = LeaderElector(kube, LeaseSettings(NS, "tidegate-scaler", "a", 15, 10), clock=clock_a)
    b = LeaderElector(kube, LeaseSettings(NS, "tidegate-scaler", "b", 15, 10), clock=clock_b)
    assert await a.attempt()
    assert not await b.attempt()
    assert (a.is_leader, b.is_leader) == (True, False)
    clock_a.now += 2
    clock_b.now += 2
    assert await a.attempt()  # renewed
    assert not await b.attempt()

    # a stops renewing: past its renew deadline it stops writing by itself ...
    clock_a.now += 10
    assert not a.is_leader
    # ... and b takes over once the record has not changed for a lease duration.
    clock_b.now += 14
    assert not await b.attempt()
    clock_b.now += 2
    assert await b.attempt()
    assert b.is_leader
    assert fake.leases[(NS, "tidegate-scaler")]["spec"]["leaseTransitions"] == 1
    assert not await a.attempt()  # a sees b holding it
    assert not a.is_leader

    await b.release()  # on shutdown: a takes over at once
    assert not b.is_leader
    assert await a.attempt()
    assert fake.leases[(NS, "tidegate-scaler")]["spec"]["holderIdentity"] == "a"


async def test_lease_api_conflict_means_not_leader(fake: FakeKube, kube: Kube) -> None:
    a = LeaderElector(kube, LeaseSettings(NS, "l", "a"), clock=Clock())
    fake.fail("POST", r"/leases$", 409)  # another candidate created it first
    assert not await a.attempt()
    assert not a.is_leader
    fake.fail("GET", r"/leases/l$", 500)
    with pytest.raises(KubeError, match="500"):
        await a.attempt()


async def test_status_and_event_writes_use_the_subresources(fake: FakeKube, kube: Kube) -> None:
    fake.add_scaler(NS, "orders", {"route": "orders"})
    from scaler.resources import parse

    ref = parse(fake.scalers[(NS, "orders")]).ref
    await patch_status(kube, ref, {"lag": 5})
    await patch_status(kube, ref, {"pending": 1})
    assert fake.scalers[(NS, "orders")]["status"] == {"lag": 5, "pending": 1}  # merged
    assert fake.scalers[(NS, "orders")]["spec"] == {"route": "orders"}  # untouched
    await emit_event(kube, ref, "Scaled", "scaled", "Normal")
    assert fake.events[0]["involvedObject"]["kind"] == "BacklogScaler"


async def test_local_actuator_starts_replaces_and_stops_workers(
    tmp_path: Path, settings: Settings
) -> None:
    config = tmp_path / "tidegate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "redis": {"url": settings.redis.url},
                "routes": [{"name": "orders", "match": {"path_prefix": "/orders"}}],
            }
        )
    )
    actuator = LocalActuator(str(config), "orders", upstream="http://127.0.0.1:9", stop_grace_s=5)
    try:
        assert await actuator.scale(2)
        assert not await actuator.scale(2)
        observed = await actuator.observe()
        assert (observed.desired, observed.current) == (2, 2)
        victim = actuator._running[0]
        victim.kill()
        await victim.wait()
        replaced = await actuator.observe()  # an exited worker is replaced
        assert replaced.current == 2
        assert victim not in actuator._running
        assert await actuator.scale(0)
        assert (await actuator.observe()).current == 0
    finally:
        await actuator.close()
    assert not actuator._running
    assert not actuator._stopping


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

        await wait_until(lambda: _true(holder() is not None), 20, "a leader")
        first = holder()
        assert first is not None
        await add_entries(redis, 250)
        await wait_until(lambda: _true(fake.replicas(NS, DEPLOY) == 3), 20, "scaled up")

        leader = next(p for p in procs if first.endswith(f"-{p.pid}"))
        leader.send_signal(signal.SIGKILL)  # no release: the standby waits out the lease
        leader.wait()
        await wait_until(lambda: _true(holder() not in (None, first)), 20, "a new leader")
        await add_entries(redis, 250)
        await wait_until(lambda: _true(fake.replicas(NS, DEPLOY) == 5), 20, "scaled by it")
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
