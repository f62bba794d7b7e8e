"""Leader election on a Lease, and the status and Event writes through their subresources."""

from __future__ import annotations

import pytest

from scaler.kube import Kube, KubeError
from scaler.lease import LeaderElector, LeaseSettings
from scaler.resources import emit_event, patch_status
from tests.fake_kube import FakeKube
from tests.integration.scaler.helpers import (
    NS,
    Clock,
)


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
