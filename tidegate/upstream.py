"""Calls to an upstream over HTTP/1.1: the relay's client, lean on purpose.

Every job a relay worker runs is one call to its service, so the client's
own cost is paid per job: this one spends about a third of the CPU of
aiohttp's ``ClientSession`` per small call (``bench/upstream_client.py``;
numbers in docs/benchmarks.md). It does the few things a relay call needs
and nothing else:

- **Connections.** Keep-alive connections to one origin (``http`` or
  ``https``), the most recently used first; at most ``max_idle`` are kept and
  none longer than ``idle_s``. A connection is reused only after a complete
  answer that allows it, with no byte after it; anything else closes it, so
  nothing left over from one exchange can be read as the next one's answer.
  A reused connection that turns out closed before any byte of the answer is
  replaced and the request sent again, once, and only for idempotent methods.
- **Requests** are written in one write: request line, ``Host``, the caller's
  headers, ``Content-Length``, body. Nothing is added (no ``User-Agent``, no
  ``Accept-Encoding``). What could split a request or smuggle a second one is
  refused before anything is sent (``ValueError``): a method that is not a
  token, a target with whitespace or control characters, a header name that
  is not a token, a value holding CR, LF or NUL, and the framing headers
  (``Host``, ``Content-Length``, ``Transfer-Encoding``, ``Connection``),
  which only the client writes. Credentials in the upstream's URL become
  ``Authorization: Basic`` and replace any the caller passes.
- **Answers** are parsed by llhttp (``httptools``), strictly: both
  ``Content-Length`` and ``Transfer-Encoding``, two lengths, a bad chunk,
  folded or bare-LF header lines are errors, never guessed at. Interim 1xx
  answers are skipped; an answer without length or chunking is read to the
  connection's end; an upgrade is an error. A body over ``max_body_bytes``
  stops the exchange (``BodyTooLarge``) and closes the connection.
- **Failures**: ``UpstreamUnreachable`` (refused, reset, closed early, a
  malformed answer; its message says which), ``TimeoutError`` when the
  whole exchange, connecting included, takes over ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import cast

import httptools

from tidegate.http import upstream_parts

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods sent again on a fresh connection when a reused one was found closed."""

FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Headers only the client writes."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(r"/[\x21-\x7e]*")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
_HOST = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:\[\]%-]+")
"""A Host value (RFC 3986 reg-name or IP literal, and a port)."""


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


class _Connection(asyncio.Protocol):
    """One connection: at most one exchange at a time, answers parsed as they arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False
        """Whether it has carried an exchange before (a reused connection)."""
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Answer] | None = None
        self._head_only = False
        self._limit = 0
        self._stream_over: int | None = None
        self._read_timeout_s = 0.0
        self._body_stream: _Body | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._ended = False
        self._got_bytes = False
        self._reset_message()
        self.reusable = False

    # -- the exchange ---------------------------------------------------------

    def send(
        self,
        data: bytes,
        *,
        deadline: float,
        head_only: bool,
        max_body_bytes: int,
        stream_over: int | None = None,
        read_timeout_s: float = 0.0,
    ) -> asyncio.Future[Answer]:
        """Write a request; the future settles with the whole answer, or with
        its head and a stream when the body is (or may be) over ``stream_over``,
        or fails with TimeoutError at ``deadline`` (the loop's clock)."""
        assert self.transport is not None
        assert self._answer is None
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._deadline = deadline
        if self._timer is None or self._timer.when() > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._check_deadline)
        self._head_only, self._limit = head_only, max_body_bytes
        self._stream_over, self._read_timeout_s = stream_over, read_timeout_s
        self._body_stream = None
        self._ended = self.reusable = self._got_bytes = False
        self._reset_message()
        self.used = True
        self.transport.write(data)
        return self._answer

    def finished(self) -> None:
        """The caller is done with the exchange (answered, failed or cancelled)."""
        keep = self._ended and self.reusable
        self._answer, self._body_stream = None, None
        if not keep:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.abort()

    def _check_deadline(self) -> None:
        """One timer per connection, not per exchange: it is armed for the
        first exchange's deadline and, when it fires before a later
        exchange's, armed again for that one (requests on a kept-alive
        connection end long before their deadline, so this rarely runs)."""
        self._timer = None
        if self._answer is None or self._answer.done():
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._check_deadline)
            return
        self._fail(TimeoutError("no answer in time"))

    def _reset_message(self) -> None:
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._until_close = False

    def _settle(self, result: Answer | BaseException) -> None:
        answer = self._answer
        if answer is None or answer.done():
            return
        if isinstance(result, BaseException):
            answer.set_exception(result)
        else:
            answer.set_result(result)

    def _complete(self) -> None:
        self._ended = True
        if self._body_stream is not None:
            self._body_stream.end()
            return
        self._settle(
            Answer(
                self._status,
                self._reason.decode("latin-1"),
                self._headers,
                b"".join(self._body),
            )
        )

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport: asyncio's, or uvloop's, which implements the
        # same interface without deriving from asyncio's classes.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._ended:
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamUnreachable("the upstream switched protocols"))
        except httptools.HttpParserError as e:  # a callback's error comes as one too
            too_large = e.__context__
            if isinstance(too_large, BodyTooLarge):
                self._fail(too_large)
            else:  # callers see one kind of failure for any answer not taken
                self._fail(UpstreamUnreachable(f"malformed answer ({e})"))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost settles the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is None or self._ended:
            return
        if self._until_close:
            self._complete()  # the body ran to the connection's end, as announced
        elif not self._got_bytes:
            self._settle(_ClosedEarly("connection closed before the answer"))
        else:
            self._fail(UpstreamUnreachable("connection closed in the middle of the answer"))

    def _fail(self, error: BaseException) -> None:
        self._settle(error)
        if self._body_stream is not None:
            self._body_stream.end(error)
        self.close()

    # -- llhttp callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        if self._ended:
            self.reusable = False  # a second answer to one request: out of step

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if 100 <= self._status < 200:
            return
        if self._head_only:  # no body follows, whatever the headers say
            self._complete()  # not reusable: llhttp would wait for that body
            return
        length: int | None = None
        framed = False
        for name, value in self._headers:
            lower = name.lower()
            if lower == "content-length":
                framed, length = True, int(value)  # llhttp has checked it
            elif lower == "transfer-encoding":
                framed = True
        bodiless = self._status in (204, 304)
        self._until_close = not framed and not bodiless
        over = self._stream_over
        if over is not None and not bodiless and (length is None or length > over):
            assert self.transport is not None
            self._body_stream = _Body(self.transport, self._read_timeout_s)
            self._settle(
                Answer(
                    self._status,
                    self._reason.decode("latin-1"),
                    self._headers,
                    b"",
                    self._body_stream.chunks(),
                )
            )

    def on_body(self, chunk: bytes) -> None:
        if self._body_stream is not None:
            self._body_stream.feed(chunk)
            return
        self._size += len(chunk)
        if self._size > self._limit:
            raise BodyTooLarge(self._status)
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        if self._ended:
            self.reusable = False  # a second answer to one request: out of step
            return
        if 100 <= self._status < 200:  # interim (103 Early Hints): the answer follows
            self._reset_message()
            return
        self.reusable = self._parser.should_keep_alive()
        self._complete()


class Upstream:
    """Calls one origin; a pool of keep-alive connections."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 5.0,
        idle_s: float = 15.0,
        max_idle: int = 100,
    ) -> None:
        parts = upstream_parts(base_url)
        assert parts.hostname is not None
        self.base_path = parts.path.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        default_port = parts.port is None or parts.port == (443 if self._ssl else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._authorization: str | None = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._authorization = f"Basic {token}"
        self.connect_timeout_s = connect_timeout_s
        self.idle_s = idle_s
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self.connections_opened = 0
        """Connections made so far (tests: keep-alive at work)."""

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes = b"",
        *,
        timeout_s: float,
        max_body_bytes: int,
        host: str | None = None,
    ) -> Answer:
        """Send ``method target`` (a path below the base URL's, with its query)
        and read the whole answer, in at most ``timeout_s``. ``host``: the
        ``Host`` to send instead of the upstream's own (a route that
        preserves the client's)."""
        data = self._encode(method, target, headers, body, host)
        deadline = asyncio.get_running_loop().time() + timeout_s
        connection, answer = await self._start(
            data, method, deadline=deadline, max_body_bytes=max_body_bytes
        )
        self._release(connection)
        return answer

    @contextlib.asynccontextmanager
    async def exchange(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes = b"",
        *,
        head_timeout_s: float,
        read_timeout_s: float,
        whole_bytes: int,
        host: str | None = None,
    ) -> AsyncIterator[Answer]:
        """Like ``request``, for answers of any size: a body declaring at most
        ``whole_bytes`` is read whole, any other is the answer's ``stream``
        (each read waits at most ``read_timeout_s``). The head must come
        within ``head_timeout_s``. The connection returns to the pool on
        leaving, if the body was read to its end."""
        data = self._encode(method, target, headers, body, host)
        connection, answer = await self._start(
            data,
            method,
            deadline=asyncio.get_running_loop().time() + head_timeout_s,
            max_body_bytes=whole_bytes,
            stream_over=whole_bytes,
            read_timeout_s=read_timeout_s,
        )
        try:
            yield answer
        finally:
            self._release(connection)

    async def _start(
        self,
        data: bytes,
        method: str,
        *,
        deadline: float,
        max_body_bytes: int,
        stream_over: int | None = None,
        read_timeout_s: float = 0.0,
    ) -> tuple[_Connection, Answer]:
        """A connection and the answer on it: the whole answer, or its head
        when it streams; TimeoutError at ``deadline``, connecting included."""
        for attempt in (1, 2):
            connection = self._checkout() or await self._connect(deadline)
            reused = connection.used
            try:
                answer = await connection.send(
                    data,
                    deadline=deadline,
                    head_only=method == "HEAD",
                    max_body_bytes=max_body_bytes,
                    stream_over=stream_over,
                    read_timeout_s=read_timeout_s,
                )
            except _ClosedEarly:
                connection.finished()
                if reused and attempt == 1 and method in IDEMPOTENT:
                    continue
                raise UpstreamUnreachable("connection closed before the answer") from None
            except BaseException:
                connection.finished()
                raise
            return connection, answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _release(self, connection: _Connection) -> None:
        connection.finished()
        if connection.closed or not connection.reusable:
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)
        if len(self._idle) > self.max_idle:
            self._idle.pop(0).close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _encode(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        host: str | None = None,
    ) -> bytes:
        if not _TOKEN.fullmatch(method):
            raise ValueError(f"not an HTTP method: {method!r}")
        path = self.base_path + target
        if not _TARGET.fullmatch(path):
            raise ValueError("the request target holds whitespace or control characters")
        if host is not None and not _HOST.fullmatch(host):
            raise ValueError(f"not a host to send as Host: {host!r}")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host or self._host_header}"]
        for name, value in headers:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"not a header name: {name!r}")
            lower = name.lower()
            if lower in FRAMING or (self._authorization and lower == "authorization"):
                continue
            if _FORBIDDEN_IN_VALUE.search(value):
                raise ValueError(f"the value of header {name} holds CR, LF or NUL")
            lines.append(f"{name}: {value}")
        if self._authorization:
            lines.append(f"Authorization: {self._authorization}")
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS", "TRACE"):
            lines.append(f"Content-Length: {len(body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body

    def _checkout(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self.idle_s:
                return connection
            connection.close()
        return None

    async def _connect(self, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self.connect_timeout_s)):
                _, connection = await loop.create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        except TimeoutError:
            if loop.time() >= deadline:
                raise  # the exchange's own time is up
            raise UpstreamUnreachable(
                f"no connection within {self.connect_timeout_s:g} s"
            ) from None
        except OSError as e:
            raise UpstreamUnreachable(f"cannot connect ({e.strerror or e})") from None
        self.connections_opened += 1
        return connection
