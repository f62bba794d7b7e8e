"""The demo's scenario: every kind of request the gateway answers, one line each."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp

from shell.demo.stage import Report, until
from shell.demo.surge import surge


async def scenario(report: Report, base: str, admin: str, burst: int, budget_s: float) -> None:
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def ready() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(admin + "/readyz") as r:
                    return r.status == 200
            return False

        report.step(await until(ready, 20.0), "gateway ready (/readyz 200)")

        statuses = []
        for i in range(5):
            async with http.post(base + "/orders", data=f"order {i}") as r:
                statuses.append(r.status)
                body = await r.json() if r.status == 201 else {}
        report.step(
            statuses == [201] * 5,
            f"5 sync POST /orders answered {statuses} by the service, through the queue "
            f"(last order id {body.get('id')})",
        )

        async with http.post(base + "/reports", data="q3 report") as r:
            location = r.headers.get("Location", "")
            report.step(
                r.status == 202 and bool(location),
                f"async POST /reports: {r.status}, Location {location}",
            )

        async def report_done() -> bool:
            async with http.get(base + location) as r:
                state: str = (await r.json()).get("state", "")
                return state == "succeeded"

        done = await until(report_done, 10.0, 0.1)
        async with http.get(base + location + "/result") as r:
            report.step(
                done and r.status == 201, f"job redeemed: state succeeded, result {r.status}"
            )
        async with http.get(base + location + "/events") as r:
            kinds = [e["type"] for e in (await r.json())["events"]]
            report.step(kinds == ["accepted", "started", "succeeded"], f"its events: {kinds}")

        headers = {"Idempotency-Key": "demo-key-1"}
        async with http.post(base + "/orders", data="once", headers=headers) as r1:
            first = r1.headers.get("Tidegate-Job")
        async with http.post(base + "/orders", data="once", headers=headers) as r2:
            second = r2.headers.get("Tidegate-Job")
        async with http.post(base + "/orders", data="other", headers=headers) as r3:
            conflict = r3.status
        report.step(
            first == second and first is not None and conflict == 422,
            f"Idempotency-Key repeated: same job {first}; other payload -> {conflict}",
        )

        async with http.post(base + "/orders", data=b"x" * 5000) as r:
            report.step(r.status == 413, f"oversized body -> {r.status} {r.content_type}")
        async with http.get(base + "/nowhere") as r:
            report.step(r.status == 404, f"no route -> {r.status} {r.content_type}")

        started = time.monotonic()
        sem = asyncio.Semaphore(64)

        async def one(i: int) -> int:
            async with sem, http.post(base + "/reports", data=f"burst {i}") as r:
                await r.read()
                return r.status

        codes = await asyncio.gather(*(one(i) for i in range(burst)))
        admitted_s = time.monotonic() - started
        report.step(
            codes.count(202) == burst,
            f"burst: {burst} async requests admitted in {admitted_s:.2f}s "
            f"({burst / max(admitted_s, 1e-6):.0f}/s)",
        )

        most = 0

        async def drained() -> bool:
            nonlocal most
            async with http.get(admin + "/status") as r:
                route = (await r.json())["routes"]["reports"]
            most = max(most, int((route["scaler"] or {}).get("ready_replicas", 0)))
            return bool(route["waiting"] == 0 and route["pending"] == 0)

        left = max(1.0, budget_s - (time.monotonic() - report.started))
        report.step(
            await until(drained, left, 0.2),
            f"backlog drained in {time.monotonic() - started:.2f}s",
        )
        report.step(
            most >= 1, f"the scaler ran up to {most} worker process(es) for reports meanwhile"
        )
        await surge(report, http, base, admin, budget_s)
        async with http.get(admin + "/status") as r:
            report.info(f"/status: {json.dumps((await r.json())['routes'])}")
