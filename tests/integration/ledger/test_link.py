"""The shared script-call connection (``tidegate.ledger.link``) against real servers.

A real redis-server for replies, errors, credentials and faults (stopped,
killed mid-call, frozen with SIGSTOP); a small asyncio server for what a real
one never sends (garbage, a reply nobody asked for).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from tests.conftest import wait_until
from tests.redis_server import RedisServer
from tidegate.errors import GroupMissing, OutcomeUnknown, RedisUnavailable
from tidegate.keys import RouteKeys
from tidegate.ledger.calls import Sample
from tidegate.ledger.client import LinkedRedis, connect
from tidegate.ledger.groups import ConsumerGroup
from tidegate.ledger.link import Link, LinkOptions
from tidegate.ledger.resp import pack
from tidegate.ledger.runner import Runner
from tidegate.ledger.scripts import run_calls
from tidegate.settings import RedisSettings

pytestmark = pytest.mark.both_loops
"""Protocols of our own on sockets: run on asyncio's loop and on uvloop's."""


def packed(*commands: tuple[object, ...]) -> bytes:
    return b"".join(pack(c) for c in commands)


def options(server: RedisServer, **kw: object) -> LinkOptions:
    return LinkOptions(host="127.0.0.1", port=server.port, **kw)  # type: ignore[arg-type]


@pytest.fixture
def own() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        os.kill(server.proc.pid, signal.SIGCONT)  # a test may have frozen it
    server.close()


async def test_concurrent_callers_each_get_their_own_replies_in_order(
    redis_server: RedisServer,
) -> None:
    link = Link(options(redis_server))

    async def caller(n: int) -> list[object]:
        commands = [("ECHO", f"{n}-{i}") for i in range(n % 5 + 1)]
        return await link.exchange(packed(*commands), len(commands))

    answers = await asyncio.gather(*(caller(n) for n in range(300)))
    for n, replies in enumerate(answers):
        assert replies == [f"{n}-{i}".encode() for i in range(n % 5 + 1)]
    assert link.connections == 1
    link.close()


@pytest.mark.parametrize(
    ("command", "error", "match"),
    [
        (("EVALSHA", "0" * 40, 0), NoScriptError, "No matching script"),
        (("LPUSH", "tg-test:string", "x"), ResponseError, "WRONGTYPE"),
        (("NOSUCHCOMMAND",), ResponseError, "unknown command"),
        (("SET",), ResponseError, "wrong number of arguments"),
    ],
)
async def test_an_error_reply_is_a_value_in_its_place(
    redis_server: RedisServer, command: tuple[object, ...], error: type, match: str
) -> None:
    link = Link(options(redis_server))
    replies = await link.exchange(
        packed(("SET", "tg-test:string", "v"), command, ("ECHO", "after")), 3
    )
    assert replies[0] == b"OK"
    assert type(replies[1]) is error
    assert match in str(replies[1])
    assert replies[2] == b"after"  # the pipeline's other replies are kept
    link.close()


async def test_a_cancelled_caller_leaves_the_connection_in_step(
    redis_server: RedisServer,
) -> None:
    link = Link(options(redis_server))
    slow = asyncio.create_task(link.exchange(packed(("BLPOP", "tg-test:none", "0.3")), 1))
    await asyncio.sleep(0.05)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    # The BLPOP's answer still comes first; it is dropped, not handed to this call.
    assert await link.exchange(packed(("ECHO", "mine")), 1) == [b"mine"]
    assert link.connections == 1
    link.close()


async def test_credentials_and_database_are_sent_first() -> None:
    with RedisServer(password="s3cret-pass") as server:
        link = Link(options(server, password="s3cret-pass", db=3, client_name="tg-link"))
        assert await link.exchange(packed(("SET", "k", "in-db-3")), 1) == [b"OK"]
        check = Redis.from_url(server.url.replace("/0", "/3"))
        assert await check.get("k") == b"in-db-3"
        names = [c["name"] for c in await check.client_list()]
        assert "tg-link" in names
        await check.aclose()
        link.close()

        wrong = Link(options(server, password="not-the-password"))
        with pytest.raises(RedisUnavailable, match="refused AUTH") as refused:
            await wrong.exchange(packed(("PING",)), 1)
        assert "not-the-password" not in str(refused.value)
        missing = Link(options(server))
        with pytest.raises(OutcomeUnknown, match=r"refuses this connection.*Authentication"):
            await missing.exchange(packed(("PING",)), 1)
        wrong.close()
        missing.close()


async def test_a_server_that_is_down_is_unavailable_and_nothing_was_sent(
    own: RedisServer,
) -> None:
    link = Link(options(own, connect_timeout_s=1.0))
    own.stop()
    with pytest.raises(RedisUnavailable, match="nothing was sent"):
        await link.exchange(packed(("PING",)), 1)
    own.start()
    assert await link.exchange(packed(("PING",)), 1) == [b"PONG"]
    link.close()


async def test_a_server_killed_mid_call_is_an_unknown_outcome_then_a_new_connection(
    own: RedisServer,
) -> None:
    link = Link(options(own))
    assert await link.exchange(packed(("PING",)), 1) == [b"PONG"]
    pending = asyncio.create_task(link.exchange(packed(("BLPOP", "tg-test:none", "5")), 1))
    await asyncio.sleep(0.05)
    assert own.proc is not None
    own.proc.kill()
    own.proc.wait()
    with pytest.raises(OutcomeUnknown, match="may have run"):
        await pending
    own.start()
    assert await link.exchange(packed(("PING",)), 1) == [b"PONG"]
    assert link.connections == 2
    link.close()


async def test_a_frozen_server_is_an_unknown_outcome_after_the_timeout(own: RedisServer) -> None:
    link = Link(options(own, timeout_s=0.3))
    assert await link.exchange(packed(("PING",)), 1) == [b"PONG"]
    assert own.proc is not None
    os.kill(own.proc.pid, signal.SIGSTOP)
    calls = [link.exchange(packed(("INCR", "tg-test:n")), 1) for _ in range(3)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, OutcomeUnknown) for r in results)
    assert "no answer within 0.3 s" in str(results[0])
    os.kill(own.proc.pid, signal.SIGCONT)
    # A new connection: the old one's late answers can never reach a new call.
    assert await link.exchange(packed(("ECHO", "again")), 1) == [b"again"]
    assert link.connections == 2
    link.close()


class Scripted:
    """A server that answers each read of a connection with the next answer of
    that connection's script (the first connection takes the first script);
    an empty answer is none at all."""

    def __init__(self, *scripts: bytes | list[bytes]) -> None:
        self.scripts = [s if isinstance(s, list) else [s] for s in scripts]
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.read = asyncio.Event()
        """Set when a command arrived."""

    async def __aenter__(self) -> Scripted:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            answers = self.scripts.pop(0) if self.scripts else []
            while await reader.read(1 << 16):  # until the client closes
                self.read.set()
                writer.write(answers.pop(0) if answers else b"")
                await writer.drain()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        for writer in self.writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()


async def test_a_peer_that_does_not_speak_redis_drops_the_connection() -> None:
    async with Scripted(b"?garbage\r\n", b"+PONG\r\n") as peer:
        link = Link(LinkOptions(host="127.0.0.1", port=peer.port))
        with pytest.raises(OutcomeUnknown, match="unreadable reply"):
            await link.exchange(packed(("PING",)), 1)
        assert await link.exchange(packed(("PING",)), 1) == [b"PONG"]  # a new connection
        assert link.connections == 2
        link.close()


async def test_a_reply_nobody_asked_for_drops_the_connection() -> None:
    async with Scripted(b"+PONG\r\n+SMUGGLED\r\n", b"+PONG\r\n") as peer:
        link = Link(LinkOptions(host="127.0.0.1", port=peer.port))
        assert await link.exchange(packed(("PING",)), 1) == [b"PONG"]
        # The extra reply came with the first: the connection is gone, and the
        # next call cannot take it for its own answer.
        assert await link.exchange(packed(("PING",)), 1) == [b"PONG"]
        assert link.connections == 2
        link.close()


async def test_callers_share_one_connection_attempt(own: RedisServer) -> None:
    link = Link(options(own, connect_timeout_s=1.0))
    own.stop()
    calls = [link.exchange(packed(("PING",)), 1) for _ in range(20)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, RedisUnavailable) for r in results)
    assert link.attempts == 1  # an outage costs one connect timeout, not twenty
    own.start()
    again = await asyncio.gather(*(link.exchange(packed(("PING",)), 1) for _ in range(20)))
    assert again == [[b"PONG"]] * 20
    assert (link.attempts, link.connections) == (2, 1)
    link.close()


async def test_a_caller_cancelled_while_connecting_leaves_the_next_one_a_clean_start() -> None:
    # The first connection never answers AUTH; the second does.
    async with Scripted(b"", [b"+OK\r\n", b"+PONG\r\n"]) as peer:
        link = Link(LinkOptions(host="127.0.0.1", port=peer.port, password="pw"))
        first = asyncio.create_task(link.exchange(packed(("PING",)), 1))
        await peer.read.wait()  # the handshake is out, unanswered
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await link.exchange(packed(("PING",)), 1) == [b"PONG"]
        assert (link.attempts, link.connections) == (2, 2)
        link.close()


async def test_a_closed_link_refuses_calls(redis_server: RedisServer) -> None:
    link = Link(options(redis_server))
    assert await link.exchange(packed(("PING",)), 1) == [b"PONG"]
    link.close()
    with pytest.raises(RedisUnavailable, match="closed"):
        await link.exchange(packed(("PING",)), 1)


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("redis://127.0.0.1:6390/0", True),
        ("redis://:pw@127.0.0.1:6390/2?client_name=x", True),
        ("redis://user:pw@127.0.0.1:6390/0", True),
        ("rediss://127.0.0.1:6390/0", False),  # TLS: redis-py's connections
        ("unix:///tmp/redis.sock", False),
    ],
)
async def test_only_plain_tcp_clients_get_a_link(url: str, linked: bool) -> None:
    client = connect(RedisSettings(url=url))
    assert isinstance(client, LinkedRedis)
    link = client.link()
    assert (link is not None) == linked
    if link is not None:
        assert link.options.port == 6390
        assert link.options.password == (None if "pw" not in url else "pw")
        assert "pw" not in repr(link.options)  # a secret, never in a log line
        assert link.options.db == (2 if "/2" in url else 0)
    await client.aclose()


@pytest.fixture
async def linked(redis_server: RedisServer) -> AsyncIterator[LinkedRedis]:
    client = connect(RedisSettings(url=redis_server.url))
    assert isinstance(client, LinkedRedis)
    yield client
    await client.aclose()


async def test_closing_the_client_closes_its_link_and_a_later_call_makes_a_new_one(
    linked: LinkedRedis,
) -> None:
    first = linked.link()
    assert first is not None
    assert linked.link() is first  # one per client and event loop
    await first.exchange(packed(("PING",)), 1)
    await linked.aclose()
    with pytest.raises(RedisUnavailable, match="closed"):
        await first.exchange(packed(("PING",)), 1)
    second = linked.link()
    assert second is not None
    assert second is not first
    assert await second.exchange(packed(("PING",)), 1) == [b"PONG"]


async def test_script_calls_of_a_connected_client_go_over_its_link(linked: LinkedRedis) -> None:
    link = linked.link()
    assert link is not None
    sample = Sample(route=RouteKeys("tg-link-route"))
    got = await Runner(linked).run(sample)
    assert not got.exists  # the script's typed answer: no such stream
    assert link.connections == 1
    # A WAIT holds its connection until replicas answer: the pool's, not the link's.
    results, acked = await run_calls(linked, [sample], wait=(0, 10))
    assert acked == 0
    assert not results[0].exists
    assert link.connections == 1


async def test_a_blocking_read_takes_a_link_of_its_own(linked: LinkedRedis) -> None:
    stream = "tg-link-reads"
    group = ConsumerGroup(linked, stream, "workers", "c1")
    await group.ensure()
    reading = asyncio.create_task(group.read(10, 5000))

    async def blocked() -> bool:
        return int((await linked.info("clients"))["blocked_clients"]) >= 1

    await wait_until(blocked, what="the read to block in Redis")
    # Script calls on the shared link are not stuck behind it.
    got = await Runner(linked).run(Sample(route=RouteKeys("tg-link-route")))
    assert not got.exists
    assert not reading.done()
    entry_id = await linked.xadd(stream, {"job": "j1", "body": b"\xff\x00"})
    assert await reading == [(entry_id, {b"job": b"j1", b"body": b"\xff\x00"})]
    await linked.delete(stream)
    with pytest.raises(GroupMissing):
        await group.read(10, 10)


async def test_a_connection_that_is_closing_is_replaced_not_written_to(
    redis_server: RedisServer,
) -> None:
    link = Link(options(redis_server))
    assert await link.exchange(packed(("PING",)), 1) == [b"PONG"]
    transport = link._transport
    assert transport is not None
    transport.close()  # closing, and the loop has not told the link yet
    assert await link.exchange(packed(("ECHO", "next")), 1) == [b"next"]
    assert link.connections == 2
    link.close()
