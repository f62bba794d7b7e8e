"""A callback receiver for the tests: an aiohttp server that checks each
delivery the way a Standard Webhooks receiver would, with an implementation
of the specification of its own (not tidegate's), and records what came.

Per path it can answer failures first (``fail_first``), or hold requests
until released (``hold``), to act out a receiver that is down or hangs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

TOLERANCE_S = 300


def verify(secret: str, headers: Any, body: bytes, now_s: float | None = None) -> bool:
    """The receiver side of Standard Webhooks: HMAC-SHA256 of "id.timestamp.body"
    with the base64 key after ``whsec_``, any of the space-separated ``v1``
    signatures, and a timestamp within five minutes."""
    try:
        msg_id, stamp = headers["webhook-id"], int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now_s is None else now_s) - stamp) > TOLERANCE_S:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(value, expected)
        for version, _, value in (s.partition(",") for s in signatures.split(" "))
    )


@dataclass
class Delivery:
    path: str
    message_id: str
    body: dict[str, Any]
    status: int
    traceparent: str | None = None


@dataclass
class Receiver:
    secret: str
    server: TestServer | None = None
    fail_first: Counter[str] = field(default_factory=Counter)
    """Per message id: how many attempts still get a 503."""
    hold: bool = False
    """Hold every request until ``released`` is set (a receiver that hangs)."""
    released: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    deliveries: list[Delivery] = field(default_factory=list)
    unverified: int = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def close(self) -> None:
        self.released.set()
        if self.server is not None:
            await self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        assert self.server.port is not None
        return self.server.port

    def url(self, path: str = "/cb") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self) -> list[Delivery]:
        """Deliveries answered 2xx."""
        return [d for d in self.deliveries if d.status < 300]

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrived.set()
        if self.hold:
            await self.released.wait()
        if not verify(self.secret, request.headers, body):
            self.unverified += 1
            return web.Response(status=401)
        msg_id = request.headers["webhook-id"]
        status = 204
        if self.fail_first[msg_id] > 0:
            self.fail_first[msg_id] -= 1
            status = 503
        self.deliveries.append(
            Delivery(
                request.path, msg_id, json.loads(body), status, request.headers.get("traceparent")
            )
        )
        return web.Response(status=status)
