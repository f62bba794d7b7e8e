"""The relay's upstream client against a scripted server: what it sends, what
it accepts back, when it reuses a connection, and every answer it refuses."""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tidegate.upstream import Answer, BodyTooLarge, Upstream, UpstreamUnreachable

pytestmark = pytest.mark.both_loops
"""Protocols of our own on sockets: run on asyncio's loop and on uvloop's."""

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


@dataclass
class Step:
    """What the server does for one request: write ``answer``, then maybe close."""

    answer: bytes = OK
    close: bool = False
    hang: bool = False


@dataclass
class Server:
    """Answers requests with scripted bytes, one step per request, in order."""

    steps: list[Step]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    eofs: int = 0
    port: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.eofs += 1
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                step = self.steps[min(len(self.requests), len(self.steps)) - 1]
                if step.hang:
                    if not await reader.read(1):
                        self.eofs += 1
                    return
                writer.write(step.answer)
                await writer.drain()
                if step.close:
                    return
        finally:
            writer.close()


Serve = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[tuple[asyncio.Server, Server]] = []

    async def start(*steps: Step) -> Server:
        server = Server(list(steps) or [Step()])
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append((listening, server))
        server.port = listening.sockets[0].getsockname()[1]
        return server

    yield start
    for listening, server in servers:
        listening.close()
        for task in server.tasks:
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)


def upstream(server: Server, base: str = "") -> Upstream:
    return Upstream(f"http://127.0.0.1:{server.port}{base}")


async def get(
    client: Upstream,
    method: str = "GET",
    *,
    body: bytes = b"",
    timeout_s: float = 5.0,
    limit: int = 1000,
) -> Answer:
    return await client.request(method, "/x", [], body, timeout_s=timeout_s, max_body_bytes=limit)


async def test_sends_one_exact_request_and_reads_the_answer(serve: Serve) -> None:
    server = await serve(Step(b"HTTP/1.1 201 Created\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc"))
    client = upstream(server, "/base/")
    answer = await client.request(
        "POST",
        "/orders?x=1",
        [("Content-Type", "application/json")],
        b"{}",
        timeout_s=5,
        max_body_bytes=10,
    )
    assert (answer.status, answer.reason, answer.body) == (201, "Created", b"abc")
    assert answer.header("x-a") == "1"
    assert answer.header("missing") is None
    assert server.requests == [
        b"POST /base/orders?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" % server.port
    ]
    await client.close()


async def test_keeps_the_connection_alive_between_calls(serve: Serve) -> None:
    server = await serve()
    client = upstream(server)
    for _ in range(5):
        assert (await get(client)).body == b"hi"
    assert (server.connections, client.connections_opened) == (1, 1)
    await client.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        # a second answer to one request: out of step, never read as the next one's
        OK + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale",
        OK + b"garbage",
    ],
    ids=["connection-close", "http-1.0", "extra-answer", "extra-bytes"],
)
async def test_does_not_reuse_a_connection_that_may_be_out_of_step(
    serve: Serve, answer: bytes
) -> None:
    server = await serve(Step(answer), Step())
    client = upstream(server)
    assert (await get(client)).body == b"hi"
    await asyncio.sleep(0)  # let trailing bytes arrive, as they would
    assert (await get(client)).body == b"hi"
    assert client.connections_opened == 2
    await client.close()


MALFORMED = {
    "length-and-chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n",
    "folded-header": b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    "not-http": b"SSH-2.0-OpenSSH_9.2\r\n",
    "bad-status": b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    "upgrade": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
    "closed-mid-body": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhi",
    "closed-mid-head": b"HTTP/1.1 200 OK\r\nContent-Le",
}


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
async def test_refuses_a_malformed_answer_and_drops_the_connection(
    serve: Serve, answer: bytes
) -> None:
    server = await serve(Step(answer, close=True), Step())
    client = upstream(server)
    with pytest.raises(UpstreamUnreachable):
        await get(client, "POST")
    assert (await get(client)).body == b"hi"
    assert client.connections_opened == 2
    await client.close()


async def test_skips_interim_answers(serve: Serve) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    server = await serve(Step(early + OK))
    client = upstream(server)
    answer = await get(client)
    assert (answer.status, answer.body, answer.headers) == (200, b"hi", [("Content-Length", "2")])
    await client.close()


async def test_reads_an_unframed_body_to_the_connections_end(serve: Serve) -> None:
    server = await serve(Step(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", close=True))
    client = upstream(server)
    assert (await get(client)).body == b"until the end"
    await client.close()


async def test_reads_chunked_and_bodiless_answers(serve: Serve) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n3\r\n yo\r\n0\r\n\r\n"
    )
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    server = await serve(Step(chunked), Step(no_content), Step())
    client = upstream(server)
    assert (await get(client)).body == b"hi yo"
    assert (await get(client)).status == 204
    assert (await get(client)).body == b"hi"
    assert client.connections_opened == 1
    await client.close()


async def test_head_answer_has_no_body_whatever_its_length_says(serve: Serve) -> None:
    server = await serve(Step(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"), Step())
    client = upstream(server)
    answer = await get(client, "HEAD", timeout_s=2.0)
    assert (answer.status, answer.body, answer.header("content-length")) == (200, b"", "5000")
    assert (await get(client)).body == b"hi"
    await client.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nhello world",
    ],
    ids=["declared", "chunked", "unframed"],
)
async def test_stops_at_the_body_limit(serve: Serve, answer: bytes) -> None:
    server = await serve(Step(answer, close=True), Step())
    client = upstream(server)
    with pytest.raises(BodyTooLarge) as raised:
        await get(client, limit=10)
    assert raised.value.status == 200
    assert (await get(client)).body == b"hi"
    await client.close()


async def test_a_reused_connection_closed_under_a_request_is_replaced_for_idempotent_methods_only(
    serve: Serve,
) -> None:
    # The server closes a kept-alive connection as the next request arrives,
    # as one does when its idle timeout ends at that moment: no byte answered.
    server = await serve(Step(), Step(b"", close=True), Step())
    client = upstream(server)
    await get(client)
    assert (await get(client, "GET")).body == b"hi"  # sent again, on a new connection
    assert (len(server.requests), client.connections_opened) == (3, 2)

    server = await serve(Step(), Step(b"", close=True), Step())
    client = upstream(server)
    await get(client, "POST")
    with pytest.raises(UpstreamUnreachable, match="closed before the answer"):
        await get(client, "POST", body=b"once")
    assert len(server.requests) == 2  # never sent twice
    await client.close()


@pytest.mark.parametrize("first_timeout_s", [0.2, 60.0], ids=["later", "earlier"])
async def test_a_kept_alive_connection_times_out_each_exchange_by_its_own_deadline(
    serve: Serve, first_timeout_s: float
) -> None:
    """One timer per connection, armed by the first exchange: a later one
    that hangs still fails at its own deadline, whether that comes after the
    timer (re-armed when it fires) or before it (armed again, earlier)."""
    server = await serve(Step(), Step(hang=True))
    client = upstream(server)
    assert (await get(client, timeout_s=first_timeout_s)).body == b"hi"
    await asyncio.sleep(0.1)
    with pytest.raises(TimeoutError, match="no answer in time"):  # ours, not wait_for's
        await asyncio.wait_for(get(client, timeout_s=0.3), timeout=10)
    assert client.connections_opened == 1
    await client.close()


async def test_times_out_and_never_reuses_the_connection(serve: Serve) -> None:
    server = await serve(Step(hang=True), Step())
    client = upstream(server)
    with pytest.raises(TimeoutError):
        await get(client, timeout_s=0.2)
    assert (await get(client)).body == b"hi"
    assert client.connections_opened == 2
    for _ in range(100):
        if server.eofs:
            break
        await asyncio.sleep(0.01)
    assert server.eofs == 1  # the hung exchange's connection was closed
    await client.close()


REFUSED = {
    "space-in-method": ("GE T", "/x", []),
    "crlf-in-method": ("GET\r\nX: y", "/x", []),
    "empty-method": ("", "/x", []),
    "space-in-target": ("GET", "/x HTTP/1.1\r\nX: y", []),
    "tab-in-target": ("GET", "/x\ty", []),
    "nul-in-target": ("GET", "/x\x00", []),
    "non-ascii-target": ("GET", "/caf\u00e9", []),
    "relative-target": ("GET", "x", []),
    "crlf-in-value": ("GET", "/x", [("X-A", "1\r\nX-Injected: 1")]),
    "lf-in-value": ("GET", "/x", [("X-A", "1\nX-Injected: 1")]),
    "nul-in-value": ("GET", "/x", [("X-A", "1\x00")]),
    "space-in-name": ("GET", "/x", [("X A", "1")]),
    "colon-in-name": ("GET", "/x", [("X:A", "1")]),
    "crlf-in-name": ("GET", "/x", [("X\r\nY", "1")]),
    "empty-name": ("GET", "/x", [("", "1")]),
    "bad-value-after-good-ones": ("GET", "/x", [("X-A", "1"), ("Host", "h"), ("X-B", "2\r\n")]),
    "bad-name-after-framing": ("GET", "/x", [("Content-Length", "1"), ("X B", "1")]),
    "empty-name-among-others": ("GET", "/x", [("X-A", "1"), ("", "1"), ("X-C", "3")]),
}

NAMED = {
    "value": ([("X-A", "1"), ("X-B", "2\x00"), ("X-C", "3")], "value of header X-B"),
    "name": ([("X-A", "1"), ("X\tB", "2"), ("X-C", "3\n")], "not a header name: 'X\\tB'"),
    "empty": ([("X-A", "1"), ("", "2")], "not a header name: ''"),
}


@pytest.mark.parametrize(("headers", "message"), NAMED.values(), ids=NAMED.keys())
async def test_a_refusal_names_the_first_header_that_cannot_be_sent(
    serve: Serve, headers: list[tuple[str, str]], message: str
) -> None:
    server = await serve()
    client = upstream(server)
    with pytest.raises(ValueError, match=re.escape(message)):
        await client.request("GET", "/x", headers, b"", timeout_s=5, max_body_bytes=10)
    assert server.connections == 0
    await client.close()


@pytest.mark.parametrize(("method", "target", "headers"), REFUSED.values(), ids=REFUSED.keys())
async def test_refuses_to_send_what_could_split_a_request(
    serve: Serve, method: str, target: str, headers: list[tuple[str, str]]
) -> None:
    server = await serve()
    client = upstream(server)
    with pytest.raises(ValueError, match=r"not an HTTP method|request target|header"):
        await client.request(method, target, headers, b"", timeout_s=5, max_body_bytes=10)
    assert server.connections == 0
    assert server.requests == []
    await client.close()


async def test_only_the_client_writes_the_framing_headers(serve: Serve) -> None:
    server = await serve()
    client = upstream(server)
    smuggled = [
        ("Host", "evil.example"),
        ("Content-Length", "0"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "upgrade"),
        ("X-Kept", "yes"),
    ]
    await client.request("POST", "/x", smuggled, b"body", timeout_s=5, max_body_bytes=10)
    assert server.requests == [
        b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Kept: yes\r\n"
        b"Content-Length: 4\r\n\r\nbody" % server.port
    ]
    await client.close()


async def test_credentials_in_the_url_become_basic_auth(serve: Serve) -> None:
    server = await serve()
    client = Upstream(f"http://svc%40corp:p%3Ass@127.0.0.1:{server.port}")
    await client.request(
        "GET", "/x", [("Authorization", "Bearer client")], timeout_s=5, max_body_bytes=10
    )
    token = base64.b64encode(b"svc@corp:p:ss").decode()
    assert server.requests[0].count(b"Authorization") == 1
    assert f"Authorization: Basic {token}\r\n".encode() in server.requests[0]
    await client.close()


async def test_an_answer_header_that_is_not_utf8_is_kept_byte_for_byte(serve: Serve) -> None:
    server = await serve(Step(b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 0\r\n\r\n"))
    client = upstream(server)
    answer = await get(client)
    value = answer.header("X-Name")
    assert value is not None
    assert value.encode("utf-8", "surrogateescape") == b"caf\xe9"
    await client.close()


async def test_an_unreachable_upstream_says_so(unused_tcp_port: int) -> None:
    client = Upstream(f"http://127.0.0.1:{unused_tcp_port}")
    with pytest.raises(UpstreamUnreachable, match="cannot connect"):
        await client.request("GET", "/x", [], timeout_s=5, max_body_bytes=10)


@pytest.mark.parametrize("url", ["ftp://host/", "http:///x", "unix:/tmp/s", "host:80"])
def test_refuses_an_upstream_that_is_not_an_http_url(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        Upstream(url)


def _certificates(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl CLI)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=tidegate test CA", "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", "server.crt",
            "-extfile", "san.ext")  # fmt: skip


async def test_an_https_upstream_is_verified_against_the_trusted_cas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (.ci/run installs it)")
    _certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    server = Server([Step()])
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=context)
    port = listening.sockets[0].getsockname()[1]
    try:
        # Not trusted: the handshake fails, nothing is sent.
        untrusted = Upstream(f"https://127.0.0.1:{port}")
        with pytest.raises(UpstreamUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.request("GET", "/x", [], timeout_s=5, max_body_bytes=10)
        assert server.requests == []
        # Trusted through the usual OpenSSL variable (as for any client here).
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.crt"))
        trusted = Upstream(f"https://127.0.0.1:{port}")
        for _ in range(2):
            answer = await trusted.request("GET", "/x", [], timeout_s=5, max_body_bytes=10)
            assert answer.body == b"hi"
        assert trusted.connections_opened == 1
        assert server.requests[0].startswith(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
        await trusted.close()
    finally:
        listening.close()
        for task in server.tasks:
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
