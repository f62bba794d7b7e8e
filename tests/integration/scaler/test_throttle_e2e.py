"""End to end: offered load above what two workers can drain.

A real gateway, real Redis, the scaler's route loop with the local actuator
(the demo's ``exports`` route: at most 2 ``tidegate worker`` processes, one
job at a time each, against a service taking 100 ms per job: about 20 jobs/s
of capacity), and a client
offering about 60 requests/s. The scaler scales to its maximum, sees the
backlog would not drain, and throttles the front door; responses carry the
rate-limit headers and the backlog stops growing. When the load stops, the
backlog drains and the throttle is lifted. Every step waits on observable
state; no assertion depends on how fast this machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import yaml
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from scaler.local import LocalActuator
from scaler.metrics import ScalerMetrics
from scaler.route_loop import RouteLoop
from shell.demo import demo_config
from shell.local_redis import free_port
from shell.sample_service import build_app as build_sample
from tests.conftest import running_gateway, wait_until
from tidegate.ledger import backlog, throttle_record
from tidegate.ledger.store import Store
from tidegate.settings import load_settings


async def test_throttle_engages_at_capacity_and_lifts_when_load_drops(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    service = TestServer(build_sample(work_ms=5), host="127.0.0.1")  # exports: 100 ms
    await service.start_server()
    upstream = str(service.make_url("")).rstrip("/")
    # The demo's surge route: at most 2 workers, one job at a time each.
    raw = demo_config(redis_url, free_port(), free_port(), upstream)
    raw["routes"] = [r for r in raw["routes"] if r["name"] == "exports"]
    config = tmp_path / "tidegate.yaml"
    config.write_text(yaml.safe_dump(raw))
    settings = load_settings(config)
    route = settings.route("exports")
    assert route.scaler is not None
    actuator = LocalActuator(str(config), "exports", upstream=upstream, stop_grace_s=5)
    loop = RouteLoop("exports", route.scaler, actuator, Store(redis), ScalerMetrics())
    scaler = asyncio.create_task(loop.run())
    answers: list[tuple[int, dict[str, str]]] = []
    offering = asyncio.Event()
    offering.set()
    try:
        async with running_gateway(settings) as gw:

            async def one() -> None:
                async with gw.http.post(gw.url("/exports"), data=b"r") as r:
                    await r.read()
                    answers.append((r.status, dict(r.headers)))

            async def offer() -> None:
                tasks = set()
                while offering.is_set():
                    task = asyncio.create_task(one())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    await asyncio.sleep(1 / 60)  # pacing the client, not a wait for a result
                await asyncio.gather(*tasks)

            load = asyncio.create_task(offer())

            async def throttled() -> bool:
                return await throttle_record.Throttles(redis).read("exports") is not None

            await wait_until(throttled, 60, "the throttle to engage")
            state = await throttle_record.Throttles(redis).read("exports")
            assert state is not None
            assert state.reason == "max_replicas"
            assert (await actuator.observe()).desired == 2  # scaled out first
            engaged_at = (await backlog.measure(redis, "exports")).waiting
            offered_before = len(answers)

            async def offered(n: int) -> bool:
                return len(answers) >= offered_before + n

            await wait_until(lambda: offered(150), 60, "150 more requests offered")
            after = answers[offered_before:]
            refused = [headers for status, headers in after if status == 429]
            assert refused, "the throttle refused some of the offered load"
            assert len(refused) < len(after)  # and admitted some at the drain rate
            assert all("RateLimit-Policy" in h and "Retry-After" in h for h in refused)
            # Unthrottled, 150 offered against ~20/s drained would have grown the
            # backlog by about 100; throttled below capacity it does not grow
            # beyond the bucket's burst.
            waiting = (await backlog.measure(redis, "exports")).waiting
            assert waiting <= engaged_at + state.burst + 10

            offering.clear()
            await load

            async def lifted() -> bool:
                return await throttle_record.Throttles(redis).read("exports") is None

            await wait_until(lifted, 60, "the throttle to lift")
            assert (await backlog.measure(redis, "exports")).waiting <= 20
    finally:
        offering.clear()
        scaler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scaler
        await actuator.close()
        await service.close()
