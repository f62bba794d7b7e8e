"""One keep-alive HTTP/1.1 connection to an upstream, reading its answers.

The answer side of ``tidegate.upstream``'s lean client: an asyncio protocol
fed to llhttp (``httptools``), strict by design (both ``Content-Length`` and
``Transfer-Encoding``, two lengths, a bad chunk, folded or bare-LF header
lines are errors, never guessed at), skipping interim 1xx answers, reading
an answer without length to the connection's end, and handing a large body
on as a stream (``_Body``). What can go wrong is one of the errors here:
``UpstreamUnreachable`` (refused, reset, closed early, malformed), or
``BodyTooLarge``. The client (pooling, writing requests) is
``tidegate.upstream``.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

from tidegate.upstream_answer import Answer, BodyTooLarge, UpstreamUnreachable, _Body, _ClosedEarly

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods sent again on a fresh connection when a reused one was found closed."""


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
