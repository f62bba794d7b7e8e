"""Chaos: nothing accepted is lost, nothing ends twice, whatever crashes.

Hundreds of jobs go through the gateway into worker processes that are
killed with SIGKILL at random and restarted; the upstream fails a fraction of
calls and always fails some marked jobs; Redis (appendonly) is restarted once
mid-run. Then every accepted job must have exactly one terminal event, the
marked ones dead-lettered and compensated once each, and the upstream must
have seen the job id as Idempotency-Key on every call.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from tests.conftest import running_gateway, wait_until
from tests.redis_server import RedisServer
from tests.worker_processes import Workers
from tidegate.keys import RouteKeys
from tidegate.settings import Settings, parse_settings

JOBS = 300
POISON_EVERY = 10  # every 10th job always fails
WORKERS = 3
KILLS = 8
TERMINAL = {"succeeded", "dead_lettered", "cancelled", "expired"}


class FlakyUpstream:
    """Fails 30% of first and second attempts with 503, and always fails
    poison jobs; records every call's Idempotency-Key."""

    def __init__(self) -> None:
        self.rand = random.Random(20261127)
        self.calls: list[tuple[str, bytes]] = []
        self.compensations: Counter[str] = Counter()
        self.held = asyncio.Event()
        """Set when the HOLD job's first call arrives; that call never answers
        before its worker has been killed."""
        self.killed = asyncio.Event()

    async def work(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("Idempotency-Key", "")
        self.calls.append((key, body))
        if body.startswith(b"HOLD") and not self.held.is_set():
            self.held.set()
            await self.killed.wait()
        if body.startswith(b"POISON"):
            return web.json_response({"error": "never"}, status=500)
        attempt = int(request.headers.get("Tidegate-Attempt", "1"))
        if attempt < 3 and self.rand.random() < 0.3:
            return web.json_response({"error": "flaky"}, status=503)
        await asyncio.sleep(self.rand.random() * 0.02)
        return web.json_response({"done": key}, status=201)

    async def compensate(self, request: web.Request) -> web.Response:
        self.compensations[request.headers.get("Idempotency-Key", "")] += 1
        return web.json_response({"ok": True})


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[FlakyUpstream, str]]:
    upstream = FlakyUpstream()
    app = web.Application()
    app.router.add_post("/chaos", upstream.work)
    app.router.add_post("/compensate", upstream.compensate)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield upstream, str(server.make_url("")).rstrip("/")
    await server.close()


def chaos_settings(redis_url: str) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url, "connect_timeout_s": 0.5},
        "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"},
        "routes": [
            {
                "name": "chaos",
                "match": {"path_prefix": "/chaos", "methods": ["POST"]},
                "mode": "async",
                "worker": {
                    "max_attempts": 8,
                    "visibility_timeout_s": 1.0,
                    "timeout_s": 2,
                    "backoff_base_s": 0.05,
                    "backoff_max_s": 0.5,
                    "compensate_path": "/compensate",
                    "concurrency": 4,
                },
            }
        ],
    }


async def test_every_accepted_job_ends_exactly_once(
    own_redis: RedisServer, flaky: tuple[FlakyUpstream, str], tmp_path: Path
) -> None:
    upstream, upstream_url = flaky
    raw = chaos_settings(own_redis.url)
    config = tmp_path / "chaos.yaml"
    config.write_text(yaml.safe_dump(raw))
    settings: Settings = parse_settings(raw, env={})
    keys = RouteKeys("chaos")
    redis = Redis.from_url(own_redis.url)
    workers = Workers(config, "chaos", "--upstream", upstream_url)
    rand = random.Random(7)
    try:
        for _ in range(WORKERS):
            await workers.start_one()
        accepted: dict[str, bool] = {}  # job id -> poison
        async with running_gateway(settings) as gateway:
            for i in range(JOBS):
                poison = i % POISON_EVERY == 0
                body = (b"POISON " if poison else b"HOLD " if i == 5 else b"job ") + str(i).encode()
                async with gateway.http.post(gateway.url("/chaos"), data=body) as r:
                    assert r.status == 202
                    accepted[(await r.json())["id"]] = poison
                if i % 40 == 39:  # a kill now and then while jobs flow in
                    victim = rand.choice([p for p in workers.procs if p.returncode is None])
                    victim.kill()
                    await victim.wait()
                    await workers.start_one()

            # A worker certainly dies mid-job: the one holding the HOLD job.
            await asyncio.wait_for(upstream.held.wait(), 30)
            for proc in list(workers.procs):
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                    await workers.start_one()
            upstream.killed.set()

            # More kills while the backlog drains, and one Redis restart.
            for kill in range(KILLS):
                await asyncio.sleep(0.3)  # spacing of the faults, not an assertion
                victim = rand.choice([p for p in workers.procs if p.returncode is None])
                victim.kill()
                await victim.wait()
                if kill == KILLS // 2:
                    own_redis.stop()
                    own_redis.start()
                await workers.start_one()

            async def all_settled() -> bool:
                try:
                    pipe = redis.pipeline(transaction=False)
                    for job_id in accepted:
                        pipe.hget(keys.job(job_id), "state")
                    states = await pipe.execute()
                except Exception:
                    return False
                done = [s.decode() if s else "" for s in states]
                settled = all(s in TERMINAL or s == "compensated" for s in done)
                poison_done = all(
                    s == "compensated"
                    for s, (_, poison) in zip(done, accepted.items(), strict=True)
                    if poison
                )
                return settled and poison_done

            await wait_until(all_settled, timeout_s=150, what="every job to settle")
    finally:
        await workers.close()

    events: Any = await redis.xrange(keys.events)
    await redis.aclose()
    terminal: Counter[str] = Counter()
    compensated: Counter[str] = Counter()
    for _, fields in events:
        job_id, kind = fields[b"job"].decode(), fields[b"type"].decode()
        if kind in TERMINAL:
            terminal[job_id] += 1
        if kind == "compensated":
            compensated[job_id] += 1
    assert set(terminal) == set(accepted)  # nothing lost
    assert set(terminal.values()) == {1}  # nothing ended twice
    poisoned = {job_id for job_id, is_poison in accepted.items() if is_poison}
    assert set(compensated) == poisoned
    assert set(compensated.values()) == {1}
    assert {k.removesuffix(":compensate") for k in upstream.compensations} == poisoned
    # The job whose worker was killed mid-call was taken over and finished.
    held = next(k for k, body in upstream.calls if body.startswith(b"HOLD"))
    kinds = [f[b"type"] for _, f in events if f[b"job"].decode() == held]
    assert kinds.count(b"started") >= 2
    assert kinds[-1] == b"succeeded"
    # Every call carried its job's id as Idempotency-Key.
    for key, body in upstream.calls:
        assert key in accepted
        assert body.startswith(b"POISON") == accepted[key]
    assert sum(1 for _ in upstream.calls) > JOBS  # retries happened
