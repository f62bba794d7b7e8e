"""Reading a stream in a consumer group, the way every worker loop needs it.

The commands are ``tidegate.ledger.groups.ConsumerGroup``'s; this is the
policy around them:

- the group (and the stream) is created before the first read, and again
  whenever Redis says it is gone;
- ``reclaim``: entries another consumer has held longer than the visibility
  timeout (it died or hung) are taken over, a few times per visibility
  timeout;
- ``read``: new entries, blocking, returning promptly when asked to stop;
- Redis being away is waited out with a backoff;
- ``group.keep`` (the heartbeat) resets the idle time of entries still being
  worked on, so that a long job is not reclaimed while alive.

The job consumer reads the request stream with it; the compensator reads the
dead-letter stream with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, NamedTuple

from tidegate.errors import GroupMissing, RedisUnavailable
from tidegate.ledger.calls import StartRead, Verdict
from tidegate.ledger.groups import ConsumerGroup, Entry

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0
"""Longest wait between attempts to reach Redis again."""

__all__ = ["MAX_BACKOFF_S", "Entry", "Fetched", "GroupReader"]


class Fetched(NamedTuple):
    """What a ``fetch`` found."""

    entries: list[Entry]
    fresh: bool
    """Delivered new by this read (``>``), not taken over from another consumer."""
    started: dict[bytes, Verdict] | None = None
    """What the starts run behind the read decided, by entry; None when they did not run."""


class GroupReader:
    def __init__(self, group: ConsumerGroup, visibility_s: float) -> None:
        self.group = group
        self.stream = group.stream
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
        await self.group.ensure()

    async def fetch(
        self,
        count: int,
        stop_wait: asyncio.Future[Any],
        block_ms: int,
        then: StartRead | None = None,
    ) -> Fetched:
        """Entries to work on: reclaimed ones first, else new ones (and
        ``then`` run right behind the read: ``ConsumerGroup.read_then``).

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
            reclaimed = await self.reclaim(count)
            answer: dict[bytes, Verdict] | None = None
            if reclaimed:
                entries = reclaimed
            elif then is None:
                entries = await self.read(count, block_ms)
            else:
                entries, answer = await self.group.read_then(count, block_ms, then)
            self._delay_s = 0.1
            return Fetched(entries, not reclaimed, answer)
        except GroupMissing as e:
            log.warning("%s; recreating", e)
            self._group_ready = False
            return Fetched([], False)
        except RedisUnavailable as e:
            return Fetched(await self._back_off(str(e), stop_wait), False)

    async def _back_off(self, why: str, stop_wait: asyncio.Future[Any]) -> list[Entry]:
        self.failures += 1
        log.warning("%s; retrying in %.1f s", why, self._delay_s)
        await asyncio.wait({stop_wait}, timeout=self._delay_s)
        self._delay_s = min(self._delay_s * 2, MAX_BACKOFF_S)
        return []

    def reclaim_due(self) -> bool:
        """Whether the next ``fetch`` looks for entries to take over."""
        return time.monotonic() >= self._next_reclaim

    async def reclaim(self, count: int) -> list[Entry]:
        now = time.monotonic()
        if now < self._next_reclaim:
            return []
        self._next_reclaim = now + self.reclaim_every_s
        entries = await self.group.claim_idle(self.visibility_ms, count)
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

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        return await self.group.read(count, block_ms)
