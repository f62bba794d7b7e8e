"""tidegate on a real Redis Cluster (3 masters, 3 replicas, started by a fixture).

The same paths as on one server: the ledger's commands, queries and upkeep
(Lua calls sent to the shard of each route, MOVED followed), admission
through the gateway with a sync wait on sharded pub/sub, a relay worker,
the scaler's sampling, the throttle and its notification, status.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from scaler.sampling import sample_route
from shell.ops import print_status
from tests.conftest import Upstream, make_settings, running_gateway, running_worker, wait_until
from tests.integration.system.test_servers import held_to_its_rule, whole_path
from tests.integration.topologies.failover import each_ended_once, under_load
from tests.redis_cluster import RedisCluster
from tidegate.envelope import Job, Reply
from tidegate.keys import GROUP, RouteKeys, new_job_id, parts_of
from tidegate.ledger import Ledger, backlog, throttle_record
from tidegate.ledger.client import connect
from tidegate.ledger.groups import ensure_group
from tidegate.ledger.route_status import routes_status
from tidegate.ledger.store import Store
from tidegate.settings import Settings
from tidegate.throttle import Throttle
from worker.relay import Relay


def job(route: str) -> Job:
    return Job(id=new_job_id(route), route=route, method="POST", path="/" + route, body=b"x")


async def test_routes_land_on_different_shards(redis_cluster: RedisCluster) -> None:
    client = ClusterClient.from_url(redis_cluster.url)
    try:
        await client.initialize()
        names = ["orders", "jobs", "exports"]
        nodes = {client.get_node_from_key(RouteKeys(n).requests) for n in names}
    finally:
        await client.aclose()
    assert None not in nodes
    assert len(nodes) == 3  # the tests below meet every shard


async def test_the_ledger_on_a_cluster(cluster_settings: Settings) -> None:
    redis = connect(cluster_settings.redis)
    try:
        ledger = Ledger(redis, cluster_settings.routes, admission_batch_max=64)
        ledger.open()
        jobs = {route: job(route) for route in ("orders", "jobs", "exports")}
        for route, j in jobs.items():  # one batch per route, each on its own shard
            admitted = await ledger.admit(cluster_settings.route(route), j, "key-" + route)
            assert admitted.outcome == "new"
        again = await ledger.admit(cluster_settings.route("orders"), jobs["orders"], "key-orders")
        assert again == (jobs["orders"].id, "duplicate")
        for route, j in jobs.items():
            stream = RouteKeys(route).requests
            await ensure_group(redis, stream, GROUP)
            reply: Any = await redis.xreadgroup(GROUP, "c1", {stream: ">"}, count=1)
            entry_id = reply[0][1][0][0].decode()
            started = await ledger.start(j, entry_id, "c1")
            assert started is not None
            assert await ledger.finish(started, entry_id, Reply(201)) == "succeeded"
            assert (await ledger.projection(j.id))["state"] == "succeeded"
            assert await ledger.result(j.id) == Reply(201)
            assert [e["type"] for e in await ledger.events(j.id)][-1] == "succeeded"
        assert await ledger.states([j.id for j in jobs.values()]) == ["succeeded"] * 3
        report = await ledger.replay("orders")
        assert (report.events, report.refused) == (3, 0)
        await ledger.reconcile("orders")
        await ledger.trim("orders")
        found = await backlog.measure(redis, "orders")
        assert (found.waiting, found.pending) == (0, 0)
        await ledger.close()
    finally:
        await redis.aclose()


async def test_the_whole_path_on_a_cluster(
    cluster_settings: Settings, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        running_gateway(cluster_settings) as gateway,
        running_worker(cluster_settings, "orders", Relay(upstream.url, 2.0)),
    ):
        async with gateway.http.post(gateway.url("/orders"), data=b"two widgets") as r:
            # 201 is the service's answer: the sync wait was woken through
            # SSUBSCRIBE (had it run out, the answer would be 202)
            assert r.status == 201, await r.text()
            job_id = r.headers["Tidegate-Job"]
        assert await gateway.job_state(job_id) == "succeeded"
        async with gateway.http.post(gateway.url("/reports"), data=b"later") as r:
            assert r.status == 202
        redis = connect(cluster_settings.redis)
        try:
            state = Throttle(5.0, 10, "max_replicas", "test", time.time())
            await throttle_record.Throttles(redis).apply("reports", state, ttl_s=30, announce=True)

            async def seen() -> bool:
                return gateway.gw.throttles.states.get("reports") is not None

            await wait_until(seen, what="the gateway to hear of the throttle")
            sample = await sample_route(
                Store(redis), "reports", now_s=time.time(), ready_replicas=0, current_replicas=0
            )
            assert (sample.waiting, sample.added_total) == (1, 1)  # what the scaler sees
            status = await routes_status(redis, cluster_settings)
            assert status["reports"].backlog is not None
            assert status["reports"].backlog.waiting == 1
            assert status["reports"].throttle == await throttle_record.Throttles(redis).read(
                "reports"
            )
        finally:
            await redis.aclose()
        async with gateway.http.get(gateway.admin_url("/readyz")) as r:
            assert r.status == 200, await r.text()
        capsys.readouterr()
        assert await print_status(cluster_settings) == 0  # tidegate status
        reports = next(line for line in capsys.readouterr().out.splitlines() if "reports" in line)
        assert "THROTTLED" in reports


@pytest.mark.parametrize(("partitions", "replicas_ack"), [(1, 1), (3, 1), (1, 0)])
async def test_a_killed_master_answers_202_or_503_and_loses_no_acknowledged_job(
    own_cluster: RedisCluster, upstream: Upstream, partitions: int, replicas_ack: int
) -> None:
    """SIGKILL the master of the route's (first partition's) slot under load:
    its replica takes over; every answer is 202 or 503 with Retry-After, never
    a 500. With ``replicas_ack: 1`` every 202 was on that replica, so each
    accepted job ends once; without it a failover may lose what the master had
    not copied yet (the docs say so), so only the answers are checked. The
    killed node comes back as a replica, so the shard can acknowledge again.
    With three partitions the other two shards go on admitting meanwhile."""
    settings = make_settings(
        own_cluster.url,
        redis_mode="cluster",
        mode="async",
        replicas_ack=replicas_ack,
        replicas_ack_timeout_s=1.0,
        partitions=partitions,
    )
    client = ClusterClient.from_url(own_cluster.url)
    await client.initialize()
    master = client.get_node_from_key(parts_of(settings.route("orders"))[0].requests)
    await client.aclose()
    assert master is not None
    async with (
        running_gateway(settings) as gateway,
        running_worker(settings, "orders", Relay(upstream.url, 2.0)),
    ):

        async def fail_over() -> None:
            own_cluster.kill(int(master.port))
            await asyncio.to_thread(own_cluster.wait_for_failover, int(master.port))
            own_cluster.restart(int(master.port))

        accepted = await under_load(gateway, fail_over)  # asserts every answer is 202 or 503
        if replicas_ack:
            await each_ended_once(settings, accepted)


ACL_FILES = Path(__file__).resolve().parents[3] / "docs"


@pytest.fixture
def cluster_acl_url(redis_cluster: RedisCluster) -> Iterator[str]:
    """The cluster's URL as the user of ``docs/redis-acl-cluster.conf``, set on every node."""
    redis_cluster.flush()
    password = "acl-cluster-password-0123"
    rules = (ACL_FILES / "redis-acl-cluster.conf").read_text().split()
    assert rules[:2] == ["user", "tidegate"]
    rules = [">" + password if rule == ">CHANGE-ME" else rule for rule in rules[2:]]
    for port in redis_cluster.ports:
        with Redis(port=port) as node:
            node.execute_command("ACL", "SETUSER", "tidegate", *rules)
    try:
        yield redis_cluster.url.replace("redis://", f"redis://tidegate:{password}@")
    finally:
        for port in redis_cluster.ports:
            with Redis(port=port) as node:
                node.execute_command("ACL", "DELUSER", "tidegate")


def test_the_cluster_acl_is_the_server_acl_and_what_the_client_reads_the_slots_with() -> None:
    server = (ACL_FILES / "redis-acl.conf").read_text().split()
    cluster = (ACL_FILES / "redis-acl-cluster.conf").read_text().split()
    assert cluster == [*server, "+cluster|slots", "+command"]


async def test_the_whole_path_runs_as_the_documented_acl_user_on_a_cluster(
    cluster_acl_url: str, upstream: Upstream
) -> None:
    settings = make_settings(cluster_acl_url, redis_mode="cluster")
    await whole_path(settings, upstream)
    await held_to_its_rule(settings)


def test_a_node_whose_port_was_taken_meanwhile_is_started_again_elsewhere() -> None:
    """The fixture's ports are free when chosen, not reserved: one taken
    before the node binds it (as another test's process may) costs a retry
    on fresh ports, not a failed test."""
    cluster = RedisCluster()
    taken = cluster.ports[2]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        try:
            cluster.start()
            assert taken not in cluster.ports
            assert cluster.cluster_info(cluster.ports[0])["cluster_state"] == "ok"
        finally:
            cluster.close()
