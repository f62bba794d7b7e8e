"""Reads right after a Redis restart: answered, not "unreachable".

A pooled connection that sat idle while Redis restarted (or failed over)
fails its first command; every read sends itself once more when its
connection turns out closed, so the job API and a waiting sync request get
the job, not a 503 or a 202, and the health check sees Redis back at once.
While Redis stays down, each still fails at once with RedisUnavailable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.redis_server import RedisServer
from tidegate.envelope import Job, Reply
from tidegate.errors import RedisUnavailable
from tidegate.keys import GROUP, RouteKeys, new_job_id
from tidegate.ledger import Ledger
from tidegate.ledger.client import connect
from tidegate.ledger.groups import ensure_group

ANSWER = Reply(201, (("X-Done", "yes"),), b"done")
UNKNOWN = new_job_id("orders")
"""A well-formed id of no job."""

Query = Callable[[Ledger, str], Awaitable[Any]]
QUERIES: dict[str, tuple[Query, Callable[[Any], bool]]] = {
    "projection": (lambda ledger, job: ledger.projection(job), lambda v: v["state"] == "succeeded"),
    "ended": (lambda ledger, job: ledger.ended(job), lambda v: v == (v[0], ANSWER)),
    "states": (lambda ledger, job: ledger.states([job, UNKNOWN]),
               lambda v: v == ["succeeded", None]),
    "result": (lambda ledger, job: ledger.result(job), lambda v: v == ANSWER),
    "events": (lambda ledger, job: ledger.events(job),
               lambda v: [e["type"] for e in v] == ["accepted", "started", "succeeded"]),
    # what the gateway's health loop and the scaler read
    "ping": (lambda ledger, _: ledger.store.ping(load_scripts=True), lambda v: v is None),
    "throttle": (lambda ledger, _: ledger.store.throttle.read("orders"), lambda v: v is None),
    "scaler view": (lambda ledger, _: ledger.store.views.read("orders"), lambda v: v is None),
    "arrival history": (lambda ledger, _: ledger.store.history.load("orders", 3, 1.0, 0.0),
                        lambda v: v == []),
}  # fmt: skip


@pytest.fixture
async def finished(own_redis: RedisServer) -> AsyncIterator[tuple[Ledger, str]]:
    """A ledger on the test's own server and a job that ended with ANSWER."""
    settings = make_settings(own_redis.url)
    client = connect(settings.redis)
    ledger = Ledger(client, settings.routes)
    ledger.open()
    stream = RouteKeys("orders").requests
    await ensure_group(client, stream, GROUP)
    job = Job(id=new_job_id("orders"), route="orders", method="POST", path="/orders", body=b"x")
    await ledger.admit(settings.route("orders"), job, None)
    read: Any = await client.xreadgroup(GROUP, "test", {stream: ">"}, count=1)
    entry = read[0][1][0][0].decode()
    started = await ledger.start(job, entry, "test")
    assert started is not None
    await ledger.finish(started, entry, ANSWER)
    try:
        yield ledger, job.id
    finally:
        await ledger.close()
        await client.aclose()


@pytest.mark.parametrize("down", [False, True], ids=["restarted", "while-down"])
@pytest.mark.parametrize("name", QUERIES)
async def test_the_first_read_after_a_restart_is_answered(
    name: str, down: bool, own_redis: RedisServer, finished: tuple[Ledger, str]
) -> None:
    """Restarted: the first read is answered. While down: it fails at once,
    and once Redis is back the next one is answered."""
    ledger, job = finished
    query, expected = QUERIES[name]
    for other, _ in QUERIES.values():  # the pool's connections have been used
        await other(ledger, job)
    own_redis.stop()
    if down:
        with pytest.raises(RedisUnavailable):
            await query(ledger, job)
    own_redis.start()
    assert expected(await query(ledger, job))
