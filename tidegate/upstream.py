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
from collections.abc import AsyncIterator, Sequence

from tidegate.http import upstream_parts
from tidegate.upstream_answer import Answer, BodyTooLarge, UpstreamUnreachable, _ClosedEarly
from tidegate.upstream_wire import IDEMPOTENT, _Connection

__all__ = ["FRAMING", "Answer", "BodyTooLarge", "Upstream", "UpstreamUnreachable"]

FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Headers only the client writes."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(r"/[\x21-\x7e]*")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
_HOST = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:\[\]%-]+")
"""A Host value (RFC 3986 reg-name or IP literal, and a port)."""


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
