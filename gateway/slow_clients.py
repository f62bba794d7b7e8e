"""Slow clients: a connection cannot be held open by sending a byte now and then.

Three limits, each in ``gateway`` settings:

- ``header_timeout_s``: a request head (request line and headers) must arrive
  whole within this, counted from the connection's start or, on a keep-alive
  connection, from the first byte of the next request. Past it, the gateway
  answers 408 problem+json, ends its side of the connection (FIN) and reads
  and discards what the client still sends for at most ``LINGER_S``, then
  closes. Closing at once, with the client's bytes unread, makes the kernel
  reset the connection, and a reset can destroy the 408 before the client
  reads it (seen with 50 slow clients on uvloop, about one run in ten).
- ``body_timeout_s``: the longest stall between two chunks of a body, enforced
  by the body reader (``gateway.body``): 408 and the connection closes.
- ``idle_timeout_s``: an idle keep-alive connection closes (aiohttp's
  ``keepalive_timeout``).

After a refused body (413, 408) the rest of it is read and discarded for at
most ``min(10, body_timeout_s)`` seconds (aiohttp's lingering close), then the
connection closes.

aiohttp's server has no head timeout of its own, so the gateway's connections
are served by ``GuardedRequestHandler``, a subclass of aiohttp's protocol that
keeps one timer per connection: armed while a head is incomplete, cancelled
as soon as the parser has produced the request, and not armed again while
that request's body arrives (however long a steady upload takes). It relies on two attributes
of aiohttp's ``RequestHandler`` (``_request_count``, ``_messages``);
``tests/integration/gateway/test_slow_clients.py`` fails if they change meaning.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.problems import CONTENT_TYPE, problem_body
from tidegate.settings import GatewaySettings

log = logging.getLogger(__name__)


def _timeout_response(header_timeout_s: float) -> bytes:
    body = problem_body(
        408,
        "request-timeout",
        "Request head too slow",
        f"The request head did not arrive within {header_timeout_s:g} s.",
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


LINGER_S = 2.0
"""After a 408 for a slow head: how long the client's further bytes are read
and discarded before the connection closes (the client closes sooner, once it
has read the answer)."""


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol with a deadline for each request head."""

    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        """The head's deadline, or after a 408 the end of the lingering."""
        self._refused = False
        """A 408 went out: what arrives now is read and discarded."""
        self._body: StreamReader | None = None
        """The body of the connection's last request (None before the first)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        before = self._request_count
        awaiting_head = self._body_done()
        super().data_received(data)
        if self._request_count > before:
            self._disarm()  # a head arrived; its body has a timeout of its own
            self._body = self._messages[-1][1] if self._messages else None
        elif awaiting_head and data and self._head_timer is None:
            self._arm()  # the first bytes of a keep-alive connection's next request

    def _body_done(self) -> bool:
        """Whether the last request's body has arrived whole, so that bytes
        arriving now belong to the next head.

        aiohttp's one parser reads heads and bodies alike (its
        ``_payload_parser`` is for upgraded connections only), so the body's
        own stream says where the connection is: while it is not at its end,
        a chunk is body, held to ``body_timeout_s`` by the body reader, never
        to the head's limit. A chunk that ends a body and starts the next head
        arms the timer with the next chunk: one chunk late, never early."""
        body = self._body
        return body is None or body.is_eof()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self._loop.call_later(self.header_timeout_s, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        log.info(
            "closed a connection from %s: request head not complete within %g s",
            transport.get_extra_info("peername"),
            self.header_timeout_s,
        )
        transport.write(_timeout_response(self.header_timeout_s))
        self._refused = True
        if not transport.can_write_eof():
            self.force_close()
            return
        transport.write_eof()  # after the answer: the client reads it, then its end
        self._head_timer = self._loop.call_later(LINGER_S, self.force_close)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request the parser refused: aiohttp's 400 quotes the offending
        line, which may be the header that holds the client's key; this
        answer names only the kind of fault, as problem+json."""
        answer = super().handle_error(request, status, exc, message)
        if status != 400 or not isinstance(exc, HttpProcessingError):
            return answer
        kind = parser_fault(exc)
        body = problem_body(
            400,
            "malformed-request",
            "Malformed request",
            f"The request could not be parsed ({kind}); nothing of it was read further.",
        )
        refused = web.Response(status=400, body=body, content_type=CONTENT_TYPE)
        refused.force_close()
        return refused


_PARSER_FAULTS = {
    "BadHttpMethod": "not an HTTP method",
    "BadHttpMessage": "not an HTTP/1.x message",
    "BadStatusLine": "a bad request line",
    "InvalidHeader": "a bad header",
    "InvalidURLError": "a bad request target",
    "LineTooLong": "a line too long",
    "TransferEncodingError": "a bad transfer encoding",
    "ContentLengthError": "a bad Content-Length",
}
"""aiohttp's parser faults, by class, as the answer and the log name them."""


def parser_fault(error: BaseException) -> str:
    """What the parser refused, in words that quote nothing the client sent
    (aiohttp's own message quotes the offending line, a key's header included)."""
    return _PARSER_FAULTS.get(type(error).__name__, "malformed")


class GuardedServer(web.Server):
    """aiohttp's low-level server, building ``GuardedRequestHandler`` connections."""

    header_timeout_s = 10.0

    def __call__(self) -> RequestHandler:
        handler = GuardedRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.header_timeout_s = self.header_timeout_s
        return handler


def guard_server(server: web.Server, settings: GatewaySettings) -> None:
    """Make a runner's server apply the gateway's slow-client limits to every
    connection it accepts from now on (call it after ``runner.setup()``)."""
    if type(server) is not web.Server and not isinstance(server, GuardedServer):
        raise TypeError(f"cannot guard a {type(server).__name__}")
    server.__class__ = GuardedServer
    assert isinstance(server, GuardedServer)
    server.header_timeout_s = settings.header_timeout_s
    server._kwargs["keepalive_timeout"] = settings.idle_timeout_s  # noqa: SLF001
    # After a refused body aiohttp reads on for a while so that the client sees
    # the answer rather than a reset; a client too slow for the body timeout
    # gets no longer than that timeout for it either.
    server._kwargs["lingering_time"] = min(10.0, settings.body_timeout_s)  # noqa: SLF001
