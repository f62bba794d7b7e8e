"""Reading a stream in a consumer group, the way every worker loop needs it.

- ``ensure_group``: create the group (and the stream) when missing,
  tolerating only BUSYGROUP;
- ``reclaim``: take over entries that another consumer has held longer than
  the visibility timeout (it died or hung), with XAUTOCLAIM; throttled to a
  few times per visibility timeout;
- ``read``: new entries, blocking, but returning promptly when asked to stop
  (the read in flight is allowed to end so that entries it claimed are not
  stranded);
- ``keep``: reset the idle time of entries still being worked on (XCLAIM
  JUSTID to ourselves), so that a long job is not reclaimed while alive.

The job consumer reads the request stream with it; the compensator reads the
dead-letter stream with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tidegate.errors import RedisUnavailable
from tidegate.redis_client import UNAVAILABLE, translate_reply

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0
"""Longest wait between attempts to reach Redis again."""

Entry = tuple[bytes, dict[bytes, bytes] | None]


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) if missing.

    Only BUSYGROUP ("group already exists") is tolerated: any other error,
    such as the key holding something that is not a stream, is a real problem
    an operator must see.
    """
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as e:
        if not str(e).startswith("BUSYGROUP"):
            raise


class GroupReader:
    def __init__(
        self, redis: Redis, stream: str, group: str, consumer: str, visibility_s: float
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.visibility_ms = int(visibility_s * 1000)
        self.reclaim_every_s = min(visibility_s / 2, 5.0)
        self.keep_every_s = visibility_s / 3
        self._next_reclaim = 0.0
        self._group_ready = False
        self._delay_s = 0.1
        self.reclaimed = 0
        """Entries taken over from consumers that held them too long."""
        self.failures = 0
        """Fetches that failed because Redis was unreachable."""

    async def ensure_group(self) -> None:
        await ensure_group(self.redis, self.stream, self.group)

    async def fetch(self, count: int, stop_wait: asyncio.Future[Any], block_ms: int) -> list[Entry]:
        """Entries to work on: reclaimed ones first, else new ones.

        Rides out what a long-running reader meets: the group and the stream
        are (re)created when missing (NOGROUP after a Redis restart without
        persistence, a FLUSHALL, a failover to an empty replica, an operator
        deleting the group; UNBLOCKED when the stream is deleted under a
        blocked read), and Redis being unreachable or refusing writes (out of
        memory) is waited out with a backoff (0.1 s doubling to 5 s) that ends
        early when stopping; all return no entries so that the caller's loop
        goes round again.
        """
        try:
            if not self._group_ready:
                await self.ensure_group()
                self._group_ready = True
            entries = await self.reclaim(count)
            if not entries:
                entries = await self.read(count, stop_wait, block_ms)
            self._delay_s = 0.1
            return entries
        except UNAVAILABLE as e:
            return await self._back_off(f"Redis unreachable ({e})", stop_wait)
        except ResponseError as e:
            message = str(e)
            if "NOGROUP" in message or message.startswith("UNBLOCKED"):
                log.warning(
                    "consumer group %s or stream %s gone (%s); recreating",
                    self.group,
                    self.stream,
                    message,
                )
                self._group_ready = False
                return []
            error = translate_reply(e, f"reading {self.stream}")
            if not isinstance(error, RedisUnavailable):
                raise error from e
            return await self._back_off(str(error), stop_wait)

    async def _back_off(self, why: str, stop_wait: asyncio.Future[Any]) -> list[Entry]:
        self.failures += 1
        log.warning("%s; retrying in %.1f s", why, self._delay_s)
        await asyncio.wait({stop_wait}, timeout=self._delay_s)
        self._delay_s = min(self._delay_s * 2, MAX_BACKOFF_S)
        return []

    async def reclaim(self, count: int) -> list[Entry]:
        now = time.monotonic()
        if now < self._next_reclaim:
            return []
        self._next_reclaim = now + self.reclaim_every_s
        reply: Any = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, self.visibility_ms, "0-0", count=count
        )
        entries: list[Entry] = reply[1]
        if entries:
            self.reclaimed += len(entries)
            log.warning(
                "reclaimed %d entr%s idle over %.1f s on %s",
                len(entries),
                "y" if len(entries) == 1 else "ies",
                self.visibility_ms / 1000,
                self.stream,
            )
            self._next_reclaim = now  # there may be more
        return entries

    async def read(self, count: int, stop_wait: asyncio.Future[Any], block_ms: int) -> list[Entry]:
        read = asyncio.ensure_future(
            self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        )
        done, _ = await asyncio.wait({read, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if read not in done:
            await asyncio.wait({read})
        result: Any = read.result()
        if not result:
            return []
        entries: list[Entry] = result[0][1]
        return entries

    async def keep(self, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            ids: list[Any] = list(entry_ids)
            await self.redis.xclaim(self.stream, self.group, self.consumer, 0, ids, justid=True)

    async def ack(self, entry_id: str) -> None:
        await self.redis.xack(self.stream, self.group, entry_id)
