"""The worker runtime: relay semantics, retries, handlers, poison entries, group creation."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import Upstream, running_worker, wait_until
from tidegate.envelope import Job, Reply
from tidegate.errors import ConfigError, RedisCommandError
from tidegate.keys import GROUP, RouteKeys, new_job_id
from tidegate.ledger import Ledger
from tidegate.ledger.groups import ensure_group
from tidegate.settings import Settings
from worker.handler import Handler, load_handler, to_reply
from worker.relay import Relay, is_retryable_status


def job_for(route: str, path: str, body: bytes = b"x") -> Job:
    return Job(id=new_job_id(route), route=route, method="POST", path=path, body=body)


async def final_state(ledger: Ledger, job_id: str) -> dict[str, str]:
    async def ended() -> bool:
        return (await ledger.projection(job_id))["state"] in ("succeeded", "dead_lettered")

    await wait_until(ended, what=f"job {job_id} to end")
    return await ledger.projection(job_id)


async def test_upstream_5xx_is_retried_then_fails_with_its_answer(
    settings: Settings, ledger: Ledger, upstream: Upstream
) -> None:
    job = job_for("fail", "/fail")
    await ledger.admit(settings.route("fail"), job, None)
    async with running_worker(settings, "fail", Relay(upstream.url, 2.0)):
        projection = await final_state(ledger, job.id)
    assert projection["state"] == "dead_lettered"
    assert projection["attempts"] == "2"  # max_attempts of the route
    assert upstream.state.calls == 2
    assert upstream.state.keys_seen == [job.id, job.id]  # same key on every attempt
    result = await ledger.result(job.id)
    assert result is not None
    assert result.status == 500
    kinds = [e["type"] for e in await ledger.events(job.id)]
    assert kinds == ["accepted", "started", "failed", "started", "failed", "dead_lettered"]


async def test_unreachable_upstream_fails_with_a_502_problem(
    settings: Settings, ledger: Ledger
) -> None:
    job = job_for("fail", "/anything")
    await ledger.admit(settings.route("fail"), job, None)
    async with running_worker(settings, "fail", Relay("http://127.0.0.1:1", 1.0)):
        projection = await final_state(ledger, job.id)
    assert projection["state"] == "dead_lettered"
    assert "unreachable" in projection["last_error"]
    result = await ledger.result(job.id)
    assert result is not None
    assert result.status == 502
    assert b"job-failed" in result.body


async def test_4xx_is_a_definitive_answer_not_retried(
    settings: Settings, ledger: Ledger, upstream: Upstream
) -> None:
    job = Job(id=new_job_id("orders"), route="orders", method="POST", path="/nope")
    await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", Relay(upstream.url, 2.0)):
        projection = await final_state(ledger, job.id)
    assert projection["state"] == "succeeded"
    assert projection["status"] == "404"
    assert projection["attempts"] == "1"


@pytest.mark.parametrize(
    ("status", "retry"), [(200, False), (404, False), (429, True), (503, True)]
)
def test_retry_classification(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


async def test_handler_mode(settings: Settings, ledger: Ledger, tmp_path: Path) -> None:
    module = tmp_path / "my_handlers.py"
    module.write_text(
        textwrap.dedent(
            """
            from tidegate.envelope import Job, Reply

            async def handle(job: Job) -> Reply:
                return Reply(207, (("X-Job", job.id),), job.body.upper())
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        fn = load_handler("my_handlers:handle")
    finally:
        sys.path.remove(str(tmp_path))
    job = job_for("orders", "/orders", b"abc")
    await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", Handler(fn)):
        await final_state(ledger, job.id)
    assert await ledger.result(job.id) == Reply(207, (("X-Job", job.id),), b"ABC")


def test_handler_loading_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="expected module:function"):
        load_handler("nocolon")
    with pytest.raises(ConfigError, match="cannot import"):
        load_handler("no_such_module_here:fn")
    with pytest.raises(ConfigError, match="not an async function"):
        load_handler("json:dumps")


def test_handler_return_values() -> None:
    assert to_reply(b"x") == Reply(200, (("Content-Type", "application/octet-stream"),), b"x")
    assert to_reply({"a": 1}).body == b'{"a": 1}'
    assert to_reply(Reply(204)) == Reply(204)


async def test_handler_exception_is_retried(settings: Settings, ledger: Ledger) -> None:
    calls: list[int] = []

    async def flaky(job: Job) -> bytes:
        calls.append(job.attempt)
        if job.attempt == 1:
            raise RuntimeError("first time fails")
        return b"second time works"

    job = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", Handler(flaky)):
        projection = await final_state(ledger, job.id)
    assert projection["state"] == "succeeded"
    assert calls == [1, 2]
    assert "first time fails" in projection["last_error"]


async def test_malformed_entry_is_dead_lettered_not_looped(
    settings: Settings, ledger: Ledger, redis: Redis
) -> None:
    keys = RouteKeys("orders")
    await redis.xadd(keys.requests, {"garbage": "1"})
    good = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), good, None)

    async def ok(job: Job) -> bytes:
        return b"ok"

    async with running_worker(settings, "orders", Handler(ok)):
        await final_state(ledger, good.id)

        async def dead_lettered() -> bool:
            return await redis.xlen(keys.dead) == 1

        await wait_until(dead_lettered, what="the malformed entry to be dead-lettered")
    dead: Any = await redis.xrange(keys.dead)
    assert b"not a job envelope" in dead[0][1][b"error"]
    groups: Any = await redis.xinfo_groups(keys.requests)
    assert groups[0]["pending"] == 0


async def test_group_creation_tolerates_only_busygroup(redis: Redis) -> None:
    stream = RouteKeys("orders").requests
    await ensure_group(redis, stream, GROUP)
    await ensure_group(redis, stream, GROUP)  # exists already: fine
    groups: Any = await redis.xinfo_groups(stream)
    assert [g["name"] for g in groups] == [GROUP.encode()]
    await redis.set(RouteKeys("reports").requests, "not a stream")
    with pytest.raises(RedisCommandError, match="WRONGTYPE"):
        await ensure_group(redis, RouteKeys("reports").requests, GROUP)


async def test_concurrency_bounds_jobs_in_flight(settings: Settings, ledger: Ledger) -> None:
    running = 0
    peak = 0
    gate = asyncio.Event()

    async def slow(job: Job) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return b""

    jobs = [job_for("orders", "/orders", str(i).encode()) for i in range(10)]
    for job in jobs:
        await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", Handler(slow), concurrency=3) as worker:

        async def three_running() -> bool:
            return running == 3

        await wait_until(three_running, what="three jobs in flight")
        assert len(worker.consumer.in_flight) == 3
        gate.set()
        for job in jobs:
            await final_state(ledger, job.id)
    assert peak == 3


async def test_stop_drains_jobs_in_flight(settings: Settings, ledger: Ledger) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(job: Job) -> bytes:
        started.set()
        await release.wait()
        return b"finished during drain"

    job = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), job, None)
    async with running_worker(settings, "orders", Handler(slow)) as worker:
        await asyncio.wait_for(started.wait(), 10)
        worker.stop.set()  # SIGTERM: stop reading, finish what runs
        await asyncio.sleep(0)
        assert not worker.task.done()
        release.set()
        await asyncio.wait_for(worker.task, 10)
    assert (await ledger.projection(job.id))["state"] == "succeeded"


def with_visibility(settings: Settings, seconds: float) -> Settings:
    route = settings.route("orders")
    worker = route.worker.__class__(**{**route.worker.__dict__, "visibility_timeout_s": seconds})
    routes = tuple(
        r if r.name != "orders" else r.__class__(**{**r.__dict__, "worker": worker})
        for r in settings.routes
    )
    return settings.__class__(redis=settings.redis, gateway=settings.gateway, routes=routes)


async def test_entries_of_a_lost_worker_are_reclaimed(
    settings: Settings, ledger: Ledger, redis: Redis
) -> None:
    """A worker read the entry and died: another one takes it over and finishes it."""
    settings = with_visibility(settings, 0.2)
    job = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), job, None)
    stream = RouteKeys("orders").requests
    await ensure_group(redis, stream, GROUP)
    lost: Any = await redis.xreadgroup(GROUP, "lost-worker", {stream: ">"}, count=1)
    entry_id = lost[0][1][0][0].decode()
    assert await ledger.start(job, entry_id, "lost-worker") is not None  # then "SIGKILL"

    attempts: list[int] = []

    async def ok(job: Job) -> bytes:
        attempts.append(job.attempt)
        return b"done by the survivor"

    async with running_worker(settings, "orders", Handler(ok)) as survivor:
        projection = await final_state(ledger, job.id)
        assert survivor.consumer.reader.reclaimed == 1
        assert survivor.consumer.metrics.reclaims.labels("orders")._value.get() == 1
    assert projection["state"] == "succeeded"
    assert attempts == [2]  # the lost attempt counts
    pending: Any = await redis.xpending(stream, GROUP)
    assert pending["pending"] == 0


async def test_long_jobs_are_not_stolen_while_alive(settings: Settings, ledger: Ledger) -> None:
    """A job running past the visibility timeout keeps its claim (heartbeat)."""
    settings = with_visibility(settings, 0.3)
    job = job_for("orders", "/orders")
    await ledger.admit(settings.route("orders"), job, None)
    release = asyncio.Event()
    runs: list[str] = []

    async def slow(job: Job) -> bytes:
        runs.append(job.id)
        await release.wait()
        return b"slow but alive"

    async def fast(job: Job) -> bytes:
        runs.append("stolen")
        return b""

    async with running_worker(settings, "orders", Handler(slow)) as first:

        async def running() -> bool:
            return bool(runs)

        await wait_until(running, what="the slow job to start")
        async with running_worker(settings, "orders", Handler(fast)) as second:
            # Several visibility timeouts pass while the first worker holds the
            # job; the second one looks for idle entries all along.
            deadline = asyncio.get_running_loop().time() + 1.5
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
                assert second.consumer.reader.reclaimed == 0
            release.set()
            await final_state(ledger, job.id)
        assert first.consumer.reader.reclaimed == 0
    assert runs == [job.id]
    assert (await ledger.projection(job.id))["attempts"] == "1"


async def test_dead_letter_is_compensated_once(
    settings: Settings, ledger: Ledger, upstream: Upstream, redis: Redis
) -> None:
    job = Job(
        id=new_job_id("fail"),
        route="fail",
        method="POST",
        path="/fail",
        query="x=1",
        headers=(("X-Order", "42"),),
        body=b"\x00binary",
    )
    await ledger.admit(settings.route("fail"), job, None)
    upstream.state.fail_compensations = 1  # the first compensation call fails
    relay = Relay(upstream.url, 2.0, "/compensate")
    async with running_worker(settings, "fail", relay) as worker:

        async def compensated() -> bool:
            return (await ledger.projection(job.id))["state"] == "compensated"

        await wait_until(compensated, what="the compensation")
        assert worker.compensator.failed == 1  # retried after the visibility timeout
        assert worker.compensator.compensated == 1
        metrics = worker.consumer.metrics
        assert metrics.attempts.labels("fail", "retried")._value.get() == 1
        assert metrics.attempts.labels("fail", "dead_lettered")._value.get() == 1
        assert metrics.dead_letters.labels("fail")._value.get() == 1
    assert upstream.state.compensation_calls == 2
    record = upstream.state.compensations[f"{job.id}:compensate"]
    assert record["job"] == job.id
    assert "500" in str(record["error"])
    assert record["request"] == {
        "method": "POST",
        "path": "/fail",
        "query": "x=1",
        "headers": [["X-Order", "42"]],
        "body_base64": "AGJpbmFyeQ==",
    }
    kinds = [e["type"] for e in await ledger.events(job.id)]
    assert kinds[-2:] == ["dead_lettered", "compensated"]
    assert kinds.count("compensated") == 1
    pending: Any = await redis.xpending(RouteKeys("fail").dead, "compensators")
    assert pending["pending"] == 0


async def test_handler_compensation_and_routes_without_one(
    settings: Settings, ledger: Ledger, redis: Redis
) -> None:
    undone: list[tuple[str, str]] = []

    async def refuse(job: Job) -> bytes:
        raise RuntimeError("cannot")

    async def undo(job: Job, error: str) -> dict[str, str]:
        undone.append((job.id, error))
        return {"undone": job.id}

    first, second = job_for("fail", "/fail"), job_for("fail", "/fail")
    await ledger.admit(settings.route("fail"), first, None)
    async with running_worker(settings, "fail", Handler(refuse, undo)):

        async def compensated() -> bool:
            return (await ledger.projection(first.id))["state"] == "compensated"

        await wait_until(compensated, what="the handler's compensation")
    assert undone == [(first.id, "handler raised RuntimeError: cannot")]

    await ledger.admit(settings.route("fail"), second, None)
    async with running_worker(settings, "fail", Handler(refuse)) as worker:

        async def dead_letter_handled() -> bool:
            return worker.compensator.skipped == 1

        await wait_until(dead_letter_handled, what="the dead letter to be acknowledged")
    assert (await ledger.projection(second.id))["state"] == "dead_lettered"
