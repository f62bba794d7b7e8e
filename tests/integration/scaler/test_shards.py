"""Routes shared across scaler replicas: one Lease per shard, fair shares.

In process, with fake clocks (a replica's Lease timing and the members'
ages are stepped, never slept through): shares balance, a new replica gets
its share, a dead one's shards move once its Leases expire, a clean stop
hands over at once. Then real ``tidegate scaler`` processes against the
fake API server: each leads about half the routes, and killing one moves its
routes to the other, which goes on scaling them.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis

from scaler.kube import Kube
from scaler.lease import LeaseSettings
from scaler.shards import ShardedElection, lease_names, shard_of
from tests.conftest import wait_until
from tests.fake_kube import FakeKube
from tests.integration.scaler.helpers import NS, Clock, add_entries, deployment_routes
from tidegate.ledger.client import connect
from tidegate.ledger.store import Store
from tidegate.settings import RedisSettings

SHARDS = 8


class Replica:
    """A ShardedElection on its own clocks (its monotonic clock and the wall)."""

    def __init__(self, kube: Kube, redis: Redis, name: str, wall: Clock) -> None:
        self.clock = Clock()
        self.wall = wall
        lease = LeaseSettings(NS, "tidegate-scaler", name, 15, 10, 2)
        self.election = ShardedElection(
            kube, lease, SHARDS, Store(redis), clock=self.clock, wall_s=wall
        )

    async def step(self) -> set[int]:
        return await self.election.step()


def holders(fake: FakeKube) -> Counter[str]:
    names = lease_names("tidegate-scaler", SHARDS)
    return Counter(
        fake.leases[(NS, n)]["spec"]["holderIdentity"] for n in names if (NS, n) in fake.leases
    )


async def halves(kube: Kube, redis: Redis) -> tuple[Replica, Replica]:
    """Two replicas on one wall clock, each leading half the shards."""
    wall = Clock()
    a, b = Replica(kube, redis, "a", wall), Replica(kube, redis, "b", wall)
    await rounds([a, b], 3)
    assert a.election.held.isdisjoint(b.election.held)
    assert len(a.election.held) == len(b.election.held) == SHARDS // 2
    return a, b


async def rounds(replicas: list[Replica], n: int, advance_s: float = 2.0) -> None:
    """``n`` retry periods: every replica steps, then every clock moves on."""
    for _ in range(n):
        for replica in replicas:
            await replica.step()
        for replica in replicas:
            replica.clock.now += advance_s
        replicas[0].wall.now += advance_s  # one wall for all


async def test_replicas_share_the_shards_evenly_and_a_newcomer_gets_its_share(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    wall = Clock()
    a, b = Replica(kube, redis, "a", wall), Replica(kube, redis, "b", wall)
    await rounds([a], 1)
    assert len(a.election.held) == SHARDS  # alone: everything
    await rounds([a, b], 3)
    assert holders(fake) == {"a": SHARDS // 2, "b": SHARDS // 2}
    assert a.election.held.isdisjoint(b.election.held)
    c = Replica(kube, redis, "c", wall)
    await rounds([a, b, c], 3)
    shares = holders(fake)
    assert sum(shares.values()) == SHARDS
    assert max(shares.values()) - min(shares.values()) <= 1  # 3, 3, 2
    assert set(shares) == {"a", "b", "c"}


async def test_a_dead_replicas_shards_move_after_the_lease_duration(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    _a, b = await halves(kube, redis)
    assert holders(fake) == {"a": SHARDS // 2, "b": SHARDS // 2}
    # a dies: it neither renews nor beats. b keeps its half while a's
    # Leases are within their duration ...
    await rounds([b], 6)  # 12 s
    assert holders(fake) == {"a": SHARDS // 2, "b": SHARDS // 2}
    # ... and takes them once they have gone unrenewed for a whole duration.
    await rounds([b], 3)  # 18 s
    assert holders(fake) == {"b": SHARDS}
    assert len(b.election.held) == SHARDS
    assert b.election.members == ["b"]


async def test_a_clean_stop_hands_the_shards_over_at_once(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    a, b = await halves(kube, redis)
    await a.election.release()
    await rounds([b], 1)
    assert holders(fake) == {"b": SHARDS}


async def test_without_redis_a_replica_holds_what_it_has_and_takes_nothing(
    fake: FakeKube, kube: Kube, redis: Redis
) -> None:
    _a, b = await halves(kube, redis)
    broken = connect(RedisSettings(url="redis://127.0.0.1:1/0", connect_timeout_s=0.1))
    b.election.liveness = Store(broken).liveness
    try:
        await rounds([b], 10)  # a is silent too: its Leases expire, b may not know why
    finally:
        await broken.aclose()
    assert holders(fake)["b"] == SHARDS // 2  # renewed, nothing taken


def test_routes_spread_over_the_shards() -> None:
    counts = Counter(shard_of(f"svc-{n}", 16) for n in range(1000))
    assert set(counts) == set(range(16))
    assert max(counts.values()) < 2 * min(counts.values())


# Real processes -------------------------------------------------------------

ROUTES = 12


def _config(path: Path, redis_url: str, kubeconfig: Path, admin_port: int) -> Path:
    raw: dict[str, Any] = {
        "redis": {"url": redis_url},
        "scaler": {
            "shards": 4,
            "lease_namespace": NS,
            "lease_duration_s": 3,
            "renew_deadline_s": 2,
            "retry_period_s": 0.5,
            "admin_listen": f"127.0.0.1:{admin_port}",
        },
        "routes": deployment_routes(ROUTES, NS, interval_s=0.2, max_replicas=5),
    }
    path.write_text(yaml.safe_dump(raw))
    return path


async def test_scaler_processes_share_the_routes_and_take_over_from_a_killed_one(
    fake: FakeKube, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    from shell.local_redis import free_port

    for n in range(ROUTES):
        fake.add_deployment(NS, f"svc-{n}-worker", replicas=0)
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    procs = []
    for name in ("one", "two"):
        config = _config(tmp_path / f"{name}.yaml", redis_url, kubeconfig, free_port())
        command = ["-m", "tidegate", "--log-level", "WARNING", "scaler", "-c", str(config)]
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                *command,
                "--kubeconfig",
                str(kubeconfig),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    names = lease_names("tidegate-scaler", 4)

    def lease_holders() -> Counter[str]:
        found = [fake.leases.get((NS, n)) for n in names]
        return Counter((lease or {}).get("spec", {}).get("holderIdentity") for lease in found)

    async def shared() -> bool:
        counts = lease_holders()
        return None not in counts and sorted(counts.values()) == [2, 2]

    try:
        await wait_until(shared, timeout_s=30, what="two replicas leading two shards each")
        pid = {proc.pid: proc for proc in procs}
        victim_identity = next(iter(lease_holders()))
        victim = next(p for p in procs if victim_identity.endswith(f"-{p.pid}"))
        victim_shards = [
            n for n, lease in enumerate(names) if _holder(fake, lease) == victim_identity
        ]
        victim.kill()
        await victim.wait()

        async def taken_over() -> bool:
            counts = lease_holders()
            return len(counts) == 1 and None not in counts and victim_identity not in counts

        await wait_until(taken_over, timeout_s=30, what="the survivor to take every shard")
        # a route of a shard the killed replica led is scaled by the survivor
        route = next(f"svc-{n}" for n in range(ROUTES) if shard_of(f"svc-{n}", 4) in victim_shards)
        await add_entries(redis, 500, route=route)

        async def scaled() -> bool:
            return fake.replicas(NS, f"{route}-worker") > 0

        await wait_until(scaled, timeout_s=30, what=f"{route} scaled by the survivor")
        assert len(pid) == 2
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


def _holder(fake: FakeKube, name: str) -> str | None:
    lease = fake.leases.get((NS, name))
    return None if lease is None else lease["spec"].get("holderIdentity")
