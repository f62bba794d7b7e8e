"""The Deployments informer against the fake API server: list, then watch
from the list's resourceVersion; 410 Gone and failures list again; readers
fall back to GET while it is not synced."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import pytest

from scaler.actuator import TargetMissing
from scaler.deployment import DeploymentActuator
from scaler.informer import DeploymentCache
from scaler.kube import Kube
from tests.conftest import wait_until
from tests.fake_kube import FakeKube

NS = "shop"


@pytest.fixture
async def cache(kube: Kube) -> AsyncIterator[DeploymentCache]:
    informer = DeploymentCache(kube, NS)
    stopping = threading.Event()
    thread = threading.Thread(target=informer.run, args=(stopping,), daemon=True)
    thread.start()
    yield informer
    stopping.set()


async def seen(cache: DeploymentCache, name: str, desired: int | None) -> None:
    async def there() -> bool:
        found = cache.get(name)
        if not cache.synced:
            return False
        if desired is None:
            return found is None
        return found is not None and found.replicas.desired == desired

    await wait_until(there, what=f"{name} at {desired} in the cache")


def deployment_gets(fake: FakeKube, name: str) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.path.endswith(f"/{name}"))


async def test_the_cache_follows_scale_writes_and_deletions_without_a_get_per_read(
    fake: FakeKube, kube: Kube, cache: DeploymentCache
) -> None:
    fake.add_deployment(NS, "orders-worker", replicas=2)
    await seen(cache, "orders-worker", 2)
    actuator = DeploymentActuator(kube, NS, "orders-worker", cache=cache)
    for _ in range(20):  # twenty ticks read the cache, not the API server
        assert (await actuator.observe()).desired == 2
    assert deployment_gets(fake, "orders-worker") == 0
    assert actuator.selector == {"app": "orders-worker"}

    assert await actuator.scale(5)
    assert (await actuator.observe()).desired == 5  # shown at once, before the watch

    async def ready_from_the_watch() -> bool:
        found = cache.get("orders-worker")
        return found is not None and found.replicas.ready == 5

    await wait_until(ready_from_the_watch, what="the status the watch brings")

    fake.add_deployment(NS, "reports-worker", replicas=1)  # a new one appears
    await seen(cache, "reports-worker", 1)
    fake.remove_deployment(NS, "orders-worker")
    await seen(cache, "orders-worker", None)
    with pytest.raises(TargetMissing):
        await actuator.observe()
    assert cache.lists == 1


async def test_a_compacted_watch_lists_again(
    fake: FakeKube, kube: Kube, cache: DeploymentCache
) -> None:
    fake.add_deployment(NS, "orders-worker", replicas=1)
    await seen(cache, "orders-worker", 1)
    fake.expire_watches()  # 410 Gone for the open watch

    async def listed_again() -> bool:
        return cache.lists >= 2 and cache.synced

    await wait_until(listed_again, what="a relist after 410")
    fake.deployments[(NS, "orders-worker")]["spec"]["replicas"] = 3
    fake._settle(NS, "orders-worker")  # a change after the relist still arrives
    await seen(cache, "orders-worker", 3)


async def test_reads_fall_back_to_get_until_the_list_succeeds(fake: FakeKube, kube: Kube) -> None:
    fake.add_deployment(NS, "orders-worker", replicas=4)
    fake.fail("GET", r"/namespaces/shop/deployments$", 403, times=1000)
    informer = DeploymentCache(kube, NS)
    stopping = threading.Event()
    threading.Thread(target=informer.run, args=(stopping,), daemon=True).start()
    try:
        actuator = DeploymentActuator(kube, NS, "orders-worker", cache=informer)
        assert (await actuator.observe()).desired == 4  # by GET: the cache is not synced
        assert not informer.synced
        assert deployment_gets(fake, "orders-worker") == 1
    finally:
        stopping.set()
