"""The demo's surge: scaling out, exhaustion, the throttle and its lifting, live."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp

from shell.demo.stage import Report, until


def live_line(route: dict[str, Any]) -> str:
    """One line of the live view of a route, from /status."""
    view = route.get("scaler") or {}
    state = route.get("throttle")
    throttled = f"{state['rate_per_s']:.1f}/s ({state['reason']})" if state else "off"
    return (
        f"live: backlog {route['waiting']:>4} | workers {view.get('ready_replicas', 0)}/"
        f"{view.get('desired_replicas', 0)} | in {view.get('arrival_rate', 0):5.1f}/s "
        f"out {view.get('drain_rate', 0):5.1f}/s | throttle {throttled}"
    )


async def surge(
    report: Report, http: aiohttp.ClientSession, base: str, admin: str, budget_s: float
) -> None:
    """Offer more than the exports workers can drain; watch scale-out, then the throttle."""
    rate, seconds = 80, 6.0
    report.info(f"surge: {rate} requests/s to /exports for {seconds:.0f}s (capacity ~20/s)")
    answers: list[tuple[int, bool]] = []
    most_ready = 0
    seen_throttle = False

    async def status() -> dict[str, Any]:
        async with http.get(admin + "/status") as r:
            route: dict[str, Any] = (await r.json())["routes"]["exports"]
            return route

    async def one() -> None:
        async with http.post(base + "/exports", data=b"export") as r:
            await r.read()
            headers = ("Retry-After" in r.headers) and ("RateLimit-Policy" in r.headers)
            answers.append((r.status, headers))

    async def view(stop: asyncio.Event) -> None:
        nonlocal most_ready, seen_throttle
        while not stop.is_set():
            route = await status()
            most_ready = max(most_ready, int((route["scaler"] or {}).get("ready_replicas", 0)))
            seen_throttle = seen_throttle or route.get("throttle") is not None
            report.info(live_line(route))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    stop = asyncio.Event()
    viewer = asyncio.create_task(view(stop))
    try:
        started = time.monotonic()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the offered load
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        admitted = sum(1 for status, _ in answers if status == 202)
        refused = [with_headers for status, with_headers in answers if status == 429]
        report.step(
            most_ready == 2 and bool(refused) and all(refused),
            f"scaled out to {most_ready} workers (the maximum), then throttled at the front: "
            f"{admitted} admitted, {len(refused)} refused with 429 + Retry-After + RateLimit",
        )

        async def lifted() -> bool:
            return (await status()).get("throttle") is None

        left = max(1.0, budget_s - (time.monotonic() - report.started))
        ended = time.monotonic()
        report.step(
            seen_throttle and await until(lifted, left, 0.2),
            f"load gone: backlog drained and throttle lifted {time.monotonic() - ended:.1f}s later",
        )
    finally:
        stop.set()
        await viewer
