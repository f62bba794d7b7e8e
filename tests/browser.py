"""Headless Chromium for the tests of pages people look at, driven through
its DevTools protocol over a websocket (aiohttp's client): navigate, then
evaluate expressions in the page. Debian's ``chromium`` package.

Started with a fresh profile and without background networking, sync or
component updates (this machine's network is closed; Chromium would try).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        await self._ws.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await self._ws.receive_json(timeout=30)
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def screenshot(self, width: int, height: int) -> bytes:
        """The page as a PNG at ``width`` x ``height`` CSS pixels."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])

    async def evaluate(self, expression: str) -> Any:
        """The expression's value in the page (JSON-able), or raise its exception."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")


@contextlib.asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    assert CHROMIUM is not None
    # Chromium's helper processes may still write into the profile for a
    # moment after the group is killed: cleaning up tolerates that.
    with tempfile.TemporaryDirectory(
        prefix="tidegate-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the helpers go with it
        )
        try:
            port = await _devtools_port(Path(profile), process)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = await r.json()
                (page,) = [t for t in targets if t["type"] == "page"]
                async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    yield Page(ws)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


async def _devtools_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    """Chromium writes the port it chose into the profile once it listens."""
    marker = profile / "DevToolsActivePort"
    for _ in range(300):
        if process.returncode is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        await asyncio.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port within 30 s")


async def _shoot(url: str, width: int, height: int, settle_s: float) -> bytes:
    async with chromium_page() as page:
        await page.goto(url)
        await asyncio.sleep(settle_s)  # the page's first polls; a picture, not a test
        return await page.screenshot(width, height)


if __name__ == "__main__":
    # A screenshot for the docs: python -m tests.browser URL OUT.png [WIDTH HEIGHT]
    import sys

    url, out, *size = sys.argv[1:]
    width, height = (int(n) for n in size) if size else (1400, 1000)
    Path(out).write_bytes(asyncio.run(_shoot(url, width, height, settle_s=3.0)))
