"""A failover under load, and what it must not lose: shared by the Sentinel
and the Cluster tests.

``under_load`` keeps four clients posting to ``/orders`` (async, with
``replicas_ack: 1``), runs ``fail_over`` once 40 were accepted, and goes on
until 40 more were accepted after it; every answer must be 202 or 503 with
``Retry-After``. ``each_ended_once`` then waits for every accepted job to
end, and checks each ended once, succeeded.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

from tests.conftest import RunningGateway, wait_until
from tidegate.ledger import TERMINAL_STATES, Ledger
from tidegate.ledger.client import connect
from tidegate.settings import Settings

BEFORE = AFTER = 40


async def under_load(
    gateway: RunningGateway, fail_over: Callable[[], Awaitable[None]]
) -> list[str]:
    """The ids of the jobs accepted (202) around the failover."""
    statuses: collections.Counter[int] = collections.Counter()
    accepted: list[str] = []
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            async with gateway.http.post(gateway.url("/orders"), data=b"x") as r:
                statuses[r.status] += 1
                if r.status == 202:
                    accepted.append((await r.json())["id"])
                elif r.status != 503:  # 503 while failing over; never anything else
                    stop.set()
                else:
                    assert r.headers["Retry-After"]
                    await asyncio.sleep(0.05)

    async def at_least(n: int) -> bool:
        return stop.is_set() or len(accepted) >= n

    clients = [asyncio.create_task(load()) for _ in range(4)]
    try:
        await wait_until(lambda: at_least(BEFORE), what="load before the failover")
        before = len(accepted)
        await fail_over()
        await wait_until(lambda: at_least(before + AFTER), 60, what="admissions again")
    finally:
        stop.set()
        await asyncio.gather(*clients)
    assert set(statuses) <= {202, 503}, statuses
    assert statuses[202] == len(accepted)
    return accepted


async def each_ended_once(settings: Settings, accepted: list[str]) -> None:
    redis = connect(settings.redis)
    try:
        ledger = Ledger(redis, settings.routes)

        async def all_ended() -> bool:
            states = await ledger.states(accepted)
            return all(s in TERMINAL_STATES for s in states)

        await wait_until(all_ended, 60, what="every accepted job to end")
        assert set(await ledger.states(accepted)) == {"succeeded"}
        for job_id in accepted:
            ended = [e for e in await ledger.events(job_id) if e["type"] == "succeeded"]
            assert len(ended) == 1, job_id
    finally:
        await redis.aclose()
