"""What the hostile-client tests share: tenants' keys, an upstream that records what
it was sent, settings, raw requests.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from yarl import URL

from tests.conftest import RunningGateway
from tidegate.keys import RouteKeys
from tidegate.settings import Settings, parse_settings

KEY_A, KEY_B = "key-of-tenant-a-0123456789", "key-of-tenant-b-9876543210"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Seen:
    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Capture:
    """An upstream that records what reached it; paths under /fail answer 500."""

    server: TestServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


def settings_for(
    redis_url: str, upstream: str, *, tenants: bool = False, **gateway: Any
) -> Settings:
    raw: dict[str, Any] = {
        "redis": {"url": redis_url, "connect_timeout_s": 0.5},
        "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", **gateway},
        "routes": [
            {
                "name": "orders",
                "match": {"path_prefix": "/orders", "methods": ["POST", "PUT"]},
                "mode": "async",
            },
            {
                "name": "exports",
                "match": {"path_prefix": "/exports", "methods": ["POST"]},
                "mode": "async",
            },
            {
                "name": "fail",
                "match": {"path_prefix": "/fail", "methods": ["POST"]},
                "mode": "async",
                "worker": {"max_attempts": 1, "timeout_s": 2},
            },
            {
                "name": "reads",
                "match": {"path_prefix": "/orders", "methods": ["GET"]},
                "mode": "proxy",
                "upstream": upstream + "/base",
            },
        ],
    }
    if tenants:
        raw["tenants"] = [
            {"name": "a", "api_key_sha256": sha(KEY_A)},
            {"name": "b", "api_key_sha256": sha(KEY_B)},
        ]
    return parse_settings(raw, env={})


async def raw_request(gateway: RunningGateway, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are; the status and the body of the answer."""
    url = URL(gateway.url("/"))
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(head + b"\r\n\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


async def stream_lengths(redis_url: str) -> int:
    client = Redis.from_url(redis_url)
    try:
        lengths = [await client.xlen(RouteKeys(r).requests) for r in ("orders", "exports", "fail")]
    finally:
        await client.aclose()
    return sum(lengths)


async def received(capture: Capture, n: int) -> bool:
    return len(capture.seen) >= n
