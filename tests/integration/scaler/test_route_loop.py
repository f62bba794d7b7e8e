"""One route's control loop against real Redis and the fake API server.

Steps are driven one at a time with a fake clock: no assertion depends on timing.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from scaler.deployment import DeploymentActuator
from scaler.kube import Kube
from scaler.route_report import VIEW_REFRESH_INTERVALS
from shell.local_redis import free_port
from tests.fake_kube import DELETION_COST, FakeKube
from tests.integration.scaler.helpers import (
    DEPLOY,
    NS,
    Clock,
    add_entries,
    drain_all,
    route_loop,
    scaler_settings,
)
from tidegate.keys import GROUP, RouteKeys
from tidegate.ledger import history, liveness, throttle_record, view_record
from tidegate.ledger.client import connect
from tidegate.scaler_view import ScalerView
from tidegate.settings import (
    RedisSettings,
    ThrottleSettings,
)
from tidegate.throttle import Throttle


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
    busy = await view_record.Views(redis).read("orders")
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
    view = await view_record.Views(redis).read("orders")
    assert view is not None
    assert view.desired_replicas == 0
    assert view.oldest_waiting_age_s is None  # nothing waits
    assert view.target == f"deployment {NS}/{DEPLOY}"
    # Only the scale subresource was ever written.
    writes = [r for r in fake.requests if r.method != "GET"]
    assert writes
    assert all(r.path.endswith("/scale") for r in writes)
    # Every step counted for the route, and timed in the one histogram of all routes.
    registry = loop.metrics.registry
    assert registry.get_sample_value("tidegate_scaler_decisions_total", {"route": "orders"}) == 15
    assert registry.get_sample_value("tidegate_scaler_decision_seconds_count") == 15


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
    await throttle_record.Throttles(redis).apply("orders", old, ttl_s=60, announce=True)
    clock = Clock()  # and the route has recovered: nothing waits
    settings = scaler_settings(throttle=ThrottleSettings(hold_s=2, low_water_s=5))
    loop = route_loop(kube, redis, clock, settings)
    await loop.step()
    assert loop.throttle is not None  # adopted, not ignored until it expires
    assert abs(loop.throttle.since_s - old.since_s) < 0.01  # the same throttle, re-rated
    assert await throttle_record.Throttles(redis).read("orders") is not None
    for _ in range(3):
        clock.now += 1
        await loop.step()
    assert await throttle_record.Throttles(redis).read("orders") is None  # lifted by the same rules
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


async def _report(redis: Redis, pods: list[str], in_flight: tuple[int, ...]) -> None:
    """Each pod's worker reports its jobs in flight, as a worker process does."""
    for pod, n in zip(pods, in_flight, strict=True):
        await liveness.Liveness(redis).refresh("orders", f"{pod}-41-a1b2c3", n)


async def test_scale_in_removes_idle_pods_and_keeps_busy_ones(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    """Without marks a ReplicaSet removes the newest pods; here the newest are
    busy. The scaler keeps as many replicas as are busy and marks the idle
    pods cheapest to delete, so those are the ones removed."""
    fake.add_deployment(NS, DEPLOY, replicas=4)
    pods = sorted(fake.pod_names(NS, DEPLOY), key=lambda n: int(n.rsplit("-", 1)[1]))
    await _report(redis, pods, (0, 0, 3, 1))  # the two newest are busy ...
    await add_entries(redis, 4)  # ... with the four jobs in flight (pending)
    stream = RouteKeys("orders").requests
    read: Any = await redis.xreadgroup(GROUP, pods[2], {stream: ">"}, count=4)
    in_flight = [entry_id for entry_id, _ in read[0][1]]
    clock = Clock()
    loop = route_loop(kube, redis, clock)

    result = await loop.step()

    assert result.wrote == 2  # nothing waits, but two workers are busy
    assert result.decision is not None
    assert result.decision.reason == "down: idle replicas only (2 busy)"
    assert fake.pod_names(NS, DEPLOY) == set(pods[2:])
    assert sorted(fake.deleted_pods) == sorted(pods[:2])
    costs = {
        name: pod["metadata"]["annotations"].get(DELETION_COST)
        for (_, name), pod in fake.pods.items()
    }
    assert costs == {pods[2]: "3", pods[3]: "1"}
    patches = [r for r in fake.requests if r.method == "PATCH" and "/pods/" in r.path]
    assert len(patches) == 4  # every pod's cost changed once (0 for the idle)

    await _report(redis, pods[2:], (0, 0))  # the busy ones finish
    await redis.xack(stream, GROUP, *in_flight)
    clock.now += 60  # past the window and the step
    assert (await loop.step()).wrote == 0
    assert fake.pod_names(NS, DEPLOY) == set()


async def test_scale_in_goes_ahead_when_pods_cannot_be_marked(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    """A chart without the pods rule (403): the ReplicaSet chooses alone."""
    fake.add_deployment(NS, DEPLOY, replicas=3)
    pods = sorted(fake.pod_names(NS, DEPLOY))
    await _report(redis, pods, (0, 0, 0))
    fake.fail("GET", r"/pods$", 403)
    loop = route_loop(kube, redis, Clock())
    assert (await loop.step()).wrote == 0
    assert fake.pod_names(NS, DEPLOY) == set()


async def test_busy_reports_of_gone_workers_are_dropped(redis: Redis) -> None:
    await liveness.Liveness(redis).refresh("orders", "pod-a-1-abc", 2)
    await redis.hset(RouteKeys("orders").workers, "pod-b-1-abc", "5:1000")  # from 1970
    await redis.hset(RouteKeys("orders").workers, "pod-c-1-abc", "garbage")
    assert await liveness.Liveness(redis).busy("orders") == {"pod-a-1-abc": 2}
    assert set(await redis.hkeys(RouteKeys("orders").workers)) == {b"pod-a-1-abc"}
    await liveness.Liveness(redis).clear("orders", "pod-a-1-abc")
    assert await liveness.Liveness(redis).busy("orders") == {}


async def test_the_arrival_history_survives_in_redis_with_its_gaps_filled(redis: Redis) -> None:
    await history.History(redis).store("orders", [(1000.0, 5.0), (1010.0, 7.0)], keep=100)
    await history.History(redis).store("orders", [(1040.0, 9.0)], keep=100)  # 1020 and 1030 lost
    series = await history.History(redis).load("orders", keep=100, bucket_s=10, now_s=1060.0)
    assert series == [5.0, 7.0, 7.0, 7.0, 9.0, 9.0]  # the phase holds: one per bucket to now
    await history.History(redis).store(
        "orders", [(1050.0 + 10 * i, 1.0) for i in range(10)], keep=4
    )
    assert await redis.llen(RouteKeys("orders").arrivals) == 4  # trimmed to what is kept


async def test_a_predicting_loop_learns_from_the_stored_history_and_adds_to_it(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    fake.add_deployment(NS, DEPLOY, replicas=1)
    now = time.time()
    start = now - 3600
    pattern = [(start + 10 * i, 200.0 if (10 * i) % 300 < 30 else 20.0) for i in range(360)]
    await history.History(redis).store("orders", pattern, keep=10_000)
    clock = Clock()
    loop = route_loop(kube, redis, clock, scaler_settings(predict="periodic"))
    await loop.step()
    predictor = loop.policy.predictor
    assert predictor is not None
    assert len(predictor.series) >= 360  # loaded, and padded to now
    assert predictor.period_buckets is not None
    assert (predictor.period_buckets * 10) % 300 == 0
    stored = await redis.llen(RouteKeys("orders").arrivals)
    for _ in range(25):  # two buckets close: the leader stores them
        clock.now += 1
        await loop.step()
    assert await redis.llen(RouteKeys("orders").arrivals) >= stored + 2


async def test_an_unchanged_view_is_written_every_few_intervals_not_every_tick(
    fake: FakeKube, kube: Kube, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[float] = []
    real = view_record.Views.publish

    async def counted(*args: Any, **kwargs: Any) -> None:
        written.append(clock.now)
        await real(*args, **kwargs)

    monkeypatch.setattr(view_record.Views, "publish", counted)  # what the loop calls through
    fake.add_deployment(NS, DEPLOY, replicas=1)
    clock = Clock()
    loop = route_loop(kube, redis, clock, scaler_settings(min_replicas=1))
    every = VIEW_REFRESH_INTERVALS
    for _ in range(2 * every + 1):  # idle: the same view tick after tick
        await loop.step()
        clock.now += 1
    assert written == [1000.0, 1000.0 + every, 1000.0 + 2 * every]
    await add_entries(redis, 300)  # a change is written at once
    await loop.step()
    assert len(written) == 4
    view = await view_record.Views(redis).read("orders")
    assert view is not None
    assert view.waiting == 300


async def test_a_refresh_from_the_stored_encoding_changes_only_the_time(redis: Redis) -> None:
    """A refreshed view reuses its encoded fields; what is read back is the
    view with the refresh's time, not the time encoded before."""
    same = ScalerView(
        waiting=3, pending=1, oldest_waiting_age_s=0.5, arrival_rate=1.5, drain_rate=1.0,
        service_rate=2.0, desired_replicas=2, needed_replicas=2, current_replicas=1,
        ready_replicas=1, max_replicas=5, exhausted=False, reason="scale up", target="d",
        throttle=None, refused_rate=0.0, updated_at_s=0.0, predicted_rate=None,
    )  # fmt: skip
    encoded = view_record.encode(same)
    later = dataclasses.replace(same, updated_at_s=1234.5)
    await view_record.Views(redis).publish("orders", later, interval_s=1, encoded=encoded)
    assert await view_record.Views(redis).read("orders") == later
