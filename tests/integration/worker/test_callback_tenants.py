"""Callbacks bound to tenants, and delivered fairly.

A tenant names only its own receivers (``tenants[].callback_allow``, within
the route's list), the signed payload names the tenant, and one slow
receiver (or one tenant's many) cannot hold back another's deliveries: each
receiver and each tenant gets a bounded share of a worker's delivery slots.
Against a real Redis and receivers that verify every signature.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import running_gateway, wait_until
from tests.integration.worker.test_callbacks import SECRET, admit, sender_of
from tests.webhook_receiver import Receiver
from tidegate.settings import Settings, parse_settings
from worker.callback_delivery import MAX_PER_RECEIVER

KEY_A, KEY_B, KEY_C = "tenant-a-key-0123456789", "tenant-b-key-0123456789", "tenant-c-key-0123"


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    a, b = Receiver(SECRET), Receiver(SECRET)
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


def two_receivers(redis_url: str, a: Receiver, b: Receiver, **more: Any) -> Settings:
    """An async route ``hooks`` whose callbacks may go to either receiver."""
    route = {
        "name": "hooks",
        "match": {"path_prefix": "/hooks", "methods": ["POST"]},
        "mode": "async",
        "callback": {"allow": [a.url("/cb"), b.url("/cb")], "secret": SECRET, "timeout_s": 30},
    }
    raw = {
        "redis": {"url": redis_url},
        "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"},
        "routes": [route],
        **more,
    }
    return parse_settings(raw, env={})


def tenant_settings(redis_url: str, a: Receiver, b: Receiver) -> Settings:
    return two_receivers(
        redis_url,
        a,
        b,
        tenants=[
            {"name": "a", "api_key_sha256": _sha(KEY_A), "callback_allow": [a.url("/cb")]},
            {"name": "b", "api_key_sha256": _sha(KEY_B), "callback_allow": [b.url("/cb")]},
            {"name": "c", "api_key_sha256": _sha(KEY_C)},  # may ask for no callback
        ],
    )


@pytest.mark.parametrize(
    ("key", "target", "status"),
    [
        (KEY_A, "a", 202),
        (KEY_B, "b", 202),
        (KEY_A, "b", 400),  # another tenant's receiver, though the route allows it
        (KEY_B, "a", 400),
        (KEY_C, "a", 400),  # a tenant without receivers
    ],
)
async def test_a_tenant_names_only_its_own_receivers(
    redis_url: str, receivers: tuple[Receiver, Receiver], key: str, target: str, status: int
) -> None:
    a, b = receivers
    settings = tenant_settings(redis_url, a, b)
    url = (a if target == "a" else b).url("/cb/x")
    async with running_gateway(settings) as gw:
        headers = {"X-Api-Key": key, "Tidegate-Callback": url}
        async with gw.http.post(gw.url("/hooks/x"), data=b"{}", headers=headers) as r:
            assert r.status == status, await r.text()
            if status == 400:
                assert (await r.json())["type"].endswith("bad-callback")
        length = await gw.gw.ledger._redis.xlen("tg:{hooks}:requests")
        assert length == (1 if status == 202 else 0)


async def test_the_signed_payload_names_the_tenant(
    redis_url: str, receivers: tuple[Receiver, Receiver]
) -> None:
    a, b = receivers
    settings = tenant_settings(redis_url, a, b)
    async with running_gateway(settings) as gw:
        headers = {"X-Api-Key": KEY_A, "Tidegate-Callback": a.url("/cb/x")}
        async with gw.http.post(gw.url("/hooks/x"), data=b"{}", headers=headers) as r:
            job_id = (await r.json())["id"]
        async with gw.http.delete(gw.url(f"/_tidegate/jobs/{job_id}"), headers=headers) as r:
            assert r.status in (200, 202, 204)
    async with sender_of(settings) as (sender, _):
        stop = asyncio.Event()
        run = asyncio.create_task(sender.run(stop))
        await wait_until(lambda: bool(a.delivered()), what="the callback")
        stop.set()
        await run
    (delivery,) = a.delivered()
    assert delivery.body["tenant"] == "a"
    assert a.unverified == 0  # signed with the rest of the body


async def test_a_slow_receiver_does_not_hold_back_another(
    redis_url: str, receivers: tuple[Receiver, Receiver]
) -> None:
    """Many callbacks to a receiver that hangs, then one to a receiver that
    answers: the second is delivered while the first still hangs, and the
    hanging one never holds more than its share of slots. Before, the slow
    receiver's deliveries took every slot until they timed out."""
    slow, fast = receivers
    slow.hold = True
    settings = two_receivers(redis_url, slow, fast)
    in_flight: list[int] = []
    async with sender_of(settings) as (sender, ledger):
        for _ in range(60):
            job_id = await admit(ledger, slow.url("/cb/x"))
            await ledger.cancel(job_id)
        stop = asyncio.Event()
        run = asyncio.create_task(sender.run(stop))
        await asyncio.wait_for(slow.arrived.wait(), 10)
        job_id = await admit(ledger, fast.url("/cb/y"))
        await ledger.cancel(job_id)

        async def fast_delivered() -> bool:
            in_flight.append(sender._receivers[slow.url("").rstrip("/")])
            return bool(fast.delivered())

        await wait_until(fast_delivered, 20, what="the fast receiver's callback")
        assert slow.delivered() == []  # still hanging
        slow.released.set()
        await wait_until(lambda: len(slow.delivered()) == 60, 60, what="the slow ones, later")
        stop.set()
        await run
    assert max(in_flight) <= MAX_PER_RECEIVER
    assert sender.metrics.callbacks.labels("hooks", "deferred")._value.get() > 0
    assert sorted({d.message_id for d in slow.delivered()}) == sorted(
        d.message_id for d in slow.delivered()
    )  # each once
