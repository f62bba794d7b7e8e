"""What an upstream answers, as the lean client hands it over.

``Answer``: status, reason, headers (values kept byte for byte as lone
surrogates where they are not UTF-8) and the body, whole, or as ``_Body``,
a stream fed by the connection with a read timeout per chunk; and the errors
an exchange ends with (``UpstreamUnreachable``, ``BodyTooLarge``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass


class UpstreamUnreachable(Exception):
    """No complete answer: refused, reset, closed early or malformed."""


class BodyTooLarge(Exception):
    """The answer's body is larger than the caller takes."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the answer ({status}) is larger than the limit")
        self.status = status


class _ClosedEarly(UpstreamUnreachable):
    """The connection closed before any byte of the answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    stream: AsyncIterator[bytes] | None = None
    """The body, when streamed (``Upstream.exchange``): ``body`` is then empty."""

    @property
    def length(self) -> int | None:
        """The declared ``Content-Length``, when there is one."""
        value = self.header("content-length")
        return int(value) if value is not None and value.isdigit() else None

    def header(self, name: str) -> str | None:
        """The first value of a header (name case-insensitive), or None."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None


class _Body:
    """The rest of a streamed answer's body, read with back-pressure: reading
    from the connection pauses while more than ``HIGH_BYTES`` wait unread."""

    HIGH_BYTES = 256 * 1024
    LOW_BYTES = 64 * 1024

    def __init__(self, transport: asyncio.Transport, read_timeout_s: float) -> None:
        self._transport = transport
        self._read_timeout_s = read_timeout_s
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._paused = False
        self._ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > self.HIGH_BYTES and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def end(self, error: BaseException | None = None) -> None:
        if not self._ended:
            self._ended, self._error = True, error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._size -= len(chunk)
                if self._paused and self._size < self.LOW_BYTES:
                    self._paused = False
                    self._transport.resume_reading()
                yield chunk
                continue
            if self._error is not None:
                raise self._error
            if self._ended:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            async with asyncio.timeout(self._read_timeout_s):
                await self._waiter
            self._waiter = None
