"""A stream read in a consumer group: the commands a worker loop sends.

``worker.group_reader`` decides when to reclaim, how to back off and when to
recreate a lost group; this module only sends the commands and translates
their failures (a lost group or stream is ``GroupMissing``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from tidegate.ledger.calls import StartRead, Verdict
from tidegate.ledger.client import Connection, redis_errors, translate_reply
from tidegate.ledger.link import Link
from tidegate.ledger.resp import pack
from tidegate.ledger.scripts import load_all, packed_call
from tidegate.ledger.transport import transport

log = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes] | None]
"""An entry id and its fields (None when the entry was deleted meanwhile)."""


async def ensure_group(redis: Connection, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) if missing.

    Only BUSYGROUP ("group already exists") is tolerated: any other error,
    such as the key holding something that is not a stream, is a real
    problem an operator must see.
    """
    with redis_errors(f"creating the consumer group of {stream}"):
        try:
            await redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as e:
            if not str(e).startswith("BUSYGROUP"):
                raise


class ConsumerGroup:
    def __init__(self, redis: Connection, stream: str, group: str, consumer: str) -> None:
        self._redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._reads: Link | None = None
        """The link the blocking reads take (one server, plain TCP): a read
        holds its connection until entries come, so it is this group's alone."""

    async def ensure(self) -> None:
        await ensure_group(self._redis, self.stream, self.group)

    async def claim_idle(self, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries held by other consumers longer than ``min_idle_ms``."""
        with redis_errors(f"reclaiming entries of {self.stream}"):
            reply: Any = await self._redis.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_ms, "0-0", count=count
            )
        entries: list[Entry] = reply[1]
        return entries

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        """New entries, blocking up to ``block_ms``.

        Awaited directly, not raced against a stop signal: a caller that is
        stopping waits for the read in flight anyway (entries it claimed must
        not be stranded), and ``block_ms`` bounds that wait."""
        link = self._read_link()
        if link is not None:
            return await self._read_over(link, count, block_ms)
        with redis_errors(f"reading {self.stream}"):
            result: Any = await self._redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        if not result:
            return []
        entries: list[Entry] = result[0][1]
        return entries

    def _read_link(self) -> Link | None:
        link = self._reads
        if link is None or link.closed or link.loop is not asyncio.get_running_loop():
            link = self._reads = transport(self._redis).own_link()
        return link

    async def read_then(
        self, count: int, block_ms: int, then: StartRead
    ) -> tuple[list[Entry], dict[bytes, Verdict] | None]:
        """New entries as ``read`` gives them, and ``then`` (the starts of
        what the read delivered) run right behind the read, on its
        connection: Redis runs it once the read has returned, so it sees the
        entries the read delivered, at no round trip of its own.

        ``then``'s answer is None when it did not run: the read has no link
        of its own (TLS, Sentinel, Cluster: the read alone is sent), the
        server had forgotten the script (NOSCRIPT: the scripts are loaded
        again for the next read), or it failed (logged); the caller then does
        without it."""
        link = self._read_link()
        if link is None:
            return await self.read(count, block_ms), None
        with redis_errors(f"reading {self.stream}"):
            reply, answer = await link.exchange(
                self._read_command(count, block_ms) + packed_call(then), 2
            )
            if isinstance(reply, Exception):
                raise reply
            if isinstance(answer, NoScriptError):
                await load_all(self._redis)
                return self._entries(reply), None
        if isinstance(answer, ResponseError):  # the link returns error replies as these
            why = translate_reply(answer, f"running the {then.SCRIPT} script")
            log.warning("%s after a read of %s failed: %s", then.SCRIPT, self.stream, why)
            return self._entries(reply), None
        return self._entries(reply), then.read(answer)

    def _read_command(self, count: int, block_ms: int) -> bytes:
        return pack(
            ["XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count,
             "BLOCK", block_ms, "STREAMS", self.stream, ">"]
        )  # fmt: skip

    async def _read_over(self, link: Link, count: int, block_ms: int) -> list[Entry]:
        with redis_errors(f"reading {self.stream}"):
            (reply,) = await link.exchange(self._read_command(count, block_ms), 1)
            if isinstance(reply, Exception):
                raise reply
        return self._entries(reply)

    @staticmethod
    def _entries(reply: Any) -> list[Entry]:
        """A (RESP2) XREADGROUP reply of one stream as entries."""
        if not reply:
            return []
        return [
            (entry_id, None if pairs is None else dict(zip(pairs[::2], pairs[1::2], strict=True)))
            for entry_id, pairs in reply[0][1]
        ]

    async def keep(self, entry_ids: Sequence[str]) -> None:
        """Reset the idle time of entries still being worked on (XCLAIM JUSTID)."""
        if entry_ids:
            ids: list[Any] = list(entry_ids)
            with redis_errors(f"keeping entries of {self.stream}"):
                await self._redis.xclaim(
                    self.stream, self.group, self.consumer, 0, ids, justid=True
                )

    async def ack(self, entry_id: str) -> None:
        with redis_errors(f"acknowledging an entry of {self.stream}"):
            await self._redis.xack(self.stream, self.group, entry_id)

    async def move(self, entry_id: str, to_stream: str, fields: Mapping[bytes, bytes]) -> None:
        """Copy an entry to another stream and acknowledge it here, atomically
        (an unreadable entry goes to the dead letters this way)."""
        with redis_errors(f"moving an entry of {self.stream}"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.xadd(to_stream, dict(fields))  # type: ignore[arg-type]
            pipe.xack(self.stream, self.group, entry_id)
            await pipe.execute()
