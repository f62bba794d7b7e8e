"""One shared connection for script calls to one Redis server: the hot path.

Every job costs script calls (admission, start, finish); each went through
redis-py's pool (check a connection out, write, read each reply under a
timeout, check it back in), which cost about 100 us of CPU per call more
than the round trip itself on a small machine. A ``Link`` is what those
calls need and nothing more:

- **One connection, shared.** RESP answers in order, so concurrent callers
  write their (packed) commands to the same socket and each takes its
  replies from the front of the queue. No checkout, no lock; calls that go
  out in the same turn of the event loop share a segment and a wake-up.
- **Replies as values.** An error reply is the redis-py exception it would
  be (``NoScriptError``, ``OutOfMemoryError``, ...), returned in its place,
  not raised, so the other replies of a pipeline are kept; one that refuses
  the connection itself (``NOAUTH``) drops it, as a lost one.
- **Failures, said once.** A connection that cannot be made, or a handshake
  (``AUTH``, ``SELECT``, ``CLIENT SETNAME``) that fails, is
  ``RedisUnavailable``: nothing was sent. Once commands are written, a lost
  connection or no answer within the socket timeout is ``OutcomeUnknown``
  for every call waiting on it (they may have run), and the connection is
  dropped; the next call connects again.
- **One deadline timer** for the whole queue, re-armed lazily (the oldest
  call's deadline comes first), instead of a timeout per call.
- **Cancelling a caller** leaves the connection in step: its replies still
  arrive and are dropped.

A worker's blocking read (XREADGROUP ... BLOCK) holds its connection until
entries come, so each consumer group's reads take a link of their own
(``LinkedRedis.own_link``, ``groups.ConsumerGroup``), parsed from the RESP2
reply into the same entries redis-py would give.

A subscription (``pubsub.Subscription``) takes a link of its own too: once
it has sent ``SSUBSCRIBE``, what Redis pushes (``smessage`` arrays) goes to
the link's ``on_push`` as it is parsed, and ``on_lost`` hears when the
connection goes. redis-py's pub/sub read each message under a timeout of
its own, which cost a gateway about as much as the sync request's admission.

It speaks RESP2 (no ``HELLO``): script replies are converted by Redis the
same way under either protocol. Only clients made by ``client.connect`` on
one server, over TCP without TLS, get a link; TLS, Unix sockets, credential
providers, Sentinel and Cluster keep redis-py's connections
(``scripts._pipeline`` and ``ConsumerGroup.read`` pick).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError

from tidegate.errors import OutcomeUnknown, RedisUnavailable
from tidegate.ledger.resp import PUSHED, error_reply, pack


@dataclass(frozen=True)
class LinkOptions:
    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line
    client_name: str | None = None
    connect_timeout_s: float | None = 5.0
    timeout_s: float | None = 5.0


@dataclass(slots=True)
class _Waiting:
    future: asyncio.Future[list[Any]]
    count: int
    deadline: float
    replies: list[Any] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    def __init__(self, link: Link) -> None:
        self.link = link

    def data_received(self, data: bytes) -> None:
        self.link._received(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link._lost(self, f"connection lost: {exc}" if exc else "connection closed by Redis")


class Link:
    """A multiplexed connection to one Redis server, made on first use."""

    def __init__(self, options: LinkOptions) -> None:
        self.options = options
        self.loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._ready = False
        """Connected and past the handshake: calls may be written."""
        self._reader: Any = None
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._connecting: asyncio.Future[RedisUnavailable | None] | None = None
        """The connection attempt on its way: done with its failure, or None."""
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.connections = 0
        """Connections made so far (tests)."""
        self.attempts = 0
        """Connection attempts so far (tests)."""
        self.on_push: Callable[[list[Any]], None] | None = None
        """Called with each pub/sub message (a reply nobody asked for) on a
        subscribed link; without it such a reply drops the connection."""
        self.on_lost: Callable[[str], None] | None = None
        """Called with the reason when the connection is lost or dropped."""

    async def exchange(self, packed: bytes, count: int) -> list[Any]:
        """Send ``packed`` (``count`` commands) and return their ``count``
        replies in order, error replies as exception values."""
        transport = self._transport
        if transport is not None and transport.is_closing() and self._protocol is not None:
            self._drop(self._protocol, "the connection is closing")  # a write would be lost
            transport = None
        if not self._ready or transport is None:
            transport = await self._connect()
        return await self._send(transport, packed, count)

    def _send(
        self, transport: asyncio.Transport, packed: bytes, count: int
    ) -> asyncio.Future[list[Any]]:
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        timeout_s = self.options.timeout_s
        deadline = self.loop.time() + timeout_s if timeout_s else float("inf")
        self._waiting.append(_Waiting(future, count, deadline))
        transport.write(packed)
        if self._timer is None and timeout_s:
            self._timer = self.loop.call_at(deadline, self._check_deadline)
        return future

    async def _connect(self) -> asyncio.Transport:
        """The connection, made by the first caller that needs it; the others
        wait for that attempt and share its outcome (one attempt at a time,
        so an outage costs one connect timeout, not one per caller)."""
        while True:
            if self._closed:
                raise RedisUnavailable("the Redis client was closed")
            if self._ready and self._transport is not None:
                return self._transport
            connecting = self._connecting
            if connecting is not None:
                await asyncio.shield(connecting)
                failed = connecting.result()
                if failed is not None:
                    raise RedisUnavailable(str(failed))
                continue  # connected, or the attempt was abandoned: look again
            connecting = self._connecting = self.loop.create_future()
            failed = None
            try:
                await self._open()
            except RedisUnavailable as e:
                failed = e
                raise
            except BaseException:
                self._abandon()  # cancelled mid-way: another caller tries again
                raise
            finally:
                self._connecting = None
                connecting.set_result(failed)

    def _abandon(self) -> None:
        if self._protocol is not None and not self._ready:
            self._drop(self._protocol, "the connection attempt was abandoned")

    async def _open(self) -> None:
        o = self.options
        self.attempts += 1
        try:
            async with asyncio.timeout(o.connect_timeout_s):
                transport, protocol = await self.loop.create_connection(
                    lambda: _Protocol(self), o.host, o.port
                )
        except (OSError, TimeoutError) as e:
            raise RedisUnavailable(
                f"Redis unreachable at {o.host}:{o.port} (nothing was sent): {e or 'timed out'}"
            ) from e
        self._transport, self._protocol = transport, protocol
        self._reader = hiredis.Reader(replyError=error_reply)
        self.connections += 1
        handshake: list[tuple[Any, ...]] = []
        if o.password is not None:
            creds = (o.username, o.password) if o.username else (o.password,)
            handshake.append(("AUTH", *creds))
        if o.db:
            handshake.append(("SELECT", o.db))
        if o.client_name:
            handshake.append(("CLIENT", "SETNAME", o.client_name))
        if handshake:
            packed = b"".join(pack(c) for c in handshake)
            try:
                replies = await self._send(transport, packed, len(handshake))
            except OutcomeUnknown as e:
                raise RedisUnavailable(f"Redis did not complete the handshake: {e}") from e
            for command, reply in zip(handshake, replies, strict=True):
                if isinstance(reply, Exception):
                    self._drop(protocol, "handshake refused")
                    raise RedisUnavailable(
                        f"Redis refused {command[0]} (nothing else was sent): {reply}"
                    )
        if self._closed:  # closed while connecting
            self._drop(protocol, "the Redis client was closed")
            raise RedisUnavailable("the Redis client was closed")
        self._ready = True

    def _received(self, protocol: _Protocol, data: bytes) -> None:
        if protocol is not self._protocol:
            return
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as e:
                self._drop(protocol, f"unreadable reply: {e}")
                return
            if reply is False:
                return
            if isinstance(reply, RedisConnectionError) and self._ready:  # NOAUTH, say
                self._drop(protocol, f"Redis refuses this connection's commands: {reply}")
                return
            on_push = self.on_push
            if on_push is not None and type(reply) is list and reply and reply[0] in PUSHED:
                on_push(reply)
                if protocol is not self._protocol:  # the callback dropped it
                    return
                continue
            if not waiting:
                self._drop(protocol, "a reply nobody asked for")
                return
            head = waiting[0]
            head.replies.append(reply)
            if len(head.replies) == head.count:
                waiting.popleft()
                if not head.future.done():  # else: the caller went away
                    head.future.set_result(head.replies)

    def _lost(self, protocol: _Protocol, why: str) -> None:
        if protocol is self._protocol:
            self._fail(why)

    def _drop(self, protocol: _Protocol, why: str) -> None:
        if protocol is self._protocol:
            transport = self._transport
            self._fail(why)
            if transport is not None:
                transport.abort()

    def _fail(self, why: str) -> None:
        """Forget the connection; every call waiting on it may have run."""
        self._transport = self._protocol = self._reader = None
        self._ready = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, collections.deque()
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(
                    OutcomeUnknown(
                        f"Redis did not answer {item.count} command(s) it may have run: {why}"
                    )
                )
        if self.on_lost is not None:
            self.on_lost(why)

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        deadline = self._waiting[0].deadline
        if self.loop.time() < deadline:
            self._timer = self.loop.call_at(deadline, self._check_deadline)
            return
        why = f"no answer within {self.options.timeout_s} s"
        if self._protocol is not None:
            self._drop(self._protocol, why)
        else:
            self._fail(why)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection; calls waiting on it fail, later ones are refused."""
        self._closed = True
        if self._protocol is not None:
            self._drop(self._protocol, "the Redis client was closed")
