"""What managed Redis services ask of a client: TLS with a private CA, an ACL user.

The whole path (admission, a sync wait on pub/sub, a relay worker, upkeep,
what the scaler reads and writes, status, liveness) runs against a server
that listens on TLS only, its CA made here with openssl, and against a
server whose only user is the one of ``docs/redis-acl.conf``, that ACL file
loaded as is (the default user switched off). The server is the one
``shell.local_redis`` picks (Redis from PATH, or the embedded
Valkey, which is built without TLS: the TLS test then skips).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import NoPermissionError

from shell.local_redis import free_port, redis_binary, start_redis_server
from tests.conftest import Upstream, make_settings, running_gateway, running_worker
from tidegate.envelope import Job
from tidegate.errors import RedisUnavailable, Refused
from tidegate.keys import GROUP, RouteKeys, new_job_id
from tidegate.ledger import Ledger, backlog, history, liveness, throttle_record, view_record
from tidegate.ledger.calls import Promote
from tidegate.ledger.client import Connection, connect
from tidegate.ledger.groups import ConsumerGroup, ensure_group
from tidegate.ledger.route_status import routes_status
from tidegate.ledger.scripts import run_calls
from tidegate.scaler_view import ScalerView
from tidegate.settings import QuotaSettings, Settings, TenantSettings
from tidegate.throttle import Throttle
from worker.relay import Relay

ACL_FILE = Path(__file__).resolve().parents[3] / "docs" / "redis-acl.conf"
PASSWORD = "acl-test-password-0123"


def _start(
    args: tuple[str, ...], port: int, folder: Path, *, optional: bool = False
) -> subprocess.Popen[bytes]:
    """A server with ``args``, once it accepts connections on ``port``. When it
    exits instead: skip if the feature is ``optional`` (a server built without
    TLS), else fail with its log."""
    binary = redis_binary()
    assert binary is not None
    proc = start_redis_server(0, folder, extra_args=args, binary=binary)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (folder / "redis.log").read_text(errors="replace")[-600:]
            if optional:
                pytest.skip(f"{binary} cannot run with {args[:2]}: {log}")
            pytest.fail(f"{binary} did not start with {args}: {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{binary} did not listen on {port}")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path) -> None:
    """A CA, and a server certificate it signed for 127.0.0.1."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=tidegate-test-ca", "-keyout", "ca.key", "-out", "ca.crt",
             cwd=folder)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.crt",
             cwd=folder)  # fmt: skip


@pytest.fixture
def tls_url() -> Iterator[str]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (.ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="tidegate-tls-") as name:
        folder = Path(name)
        make_ca(folder)
        port = free_port()
        args = ("--tls-port", str(port), "--tls-cert-file", str(folder / "server.crt"),
                "--tls-key-file", str(folder / "server.key"),
                "--tls-ca-cert-file", str(folder / "ca.crt"),
                "--tls-auth-clients", "no")  # fmt: skip
        proc = _start(args, port, folder, optional=True)
        try:
            yield f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={folder / 'ca.crt'}"
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def acl_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="tidegate-acl-") as name:
        folder = Path(name)
        rules = ACL_FILE.read_text().replace(">CHANGE-ME", ">" + PASSWORD)
        (folder / "users.acl").write_text(rules + "user default off\n")
        port = free_port()
        proc = _start(("--port", str(port), "--aclfile", str(folder / "users.acl")), port, folder)
        try:
            yield f"redis://tidegate:{PASSWORD}@127.0.0.1:{port}/1"  # SELECT too
        finally:
            proc.terminate()
            proc.wait(10)


async def whole_path(settings: Settings, upstream: Upstream) -> None:
    """Every kind of command tidegate sends, through its own code."""
    route = settings.route("orders")
    async with (
        running_gateway(settings) as gateway,
        running_worker(settings, "orders", Relay(upstream.url, 2.0)) as worker,
    ):
        async with gateway.http.post(gateway.url("/orders"), data=b"two widgets") as r:
            assert r.status == 201, await r.text()
            job_id = r.headers["Tidegate-Job"]
        async with gateway.http.post(gateway.url("/reports"), data=b"later") as r:
            assert r.status == 202
        assert await gateway.job_state(job_id) == "succeeded"
        async with gateway.http.get(gateway.admin_url("/status")) as r:
            assert r.status == 200
        async with gateway.http.get(gateway.admin_url("/readyz")) as r:
            assert r.status == 200, await r.text()  # PING, the result subscription
        redis = connect(settings.redis)
        try:
            consumer = worker.consumer.name
            assert await liveness.Liveness(redis).first_alive("orders", consumer) is not None
            ledger = Ledger(redis, settings.routes)
            await ledger.reconcile("orders")
            await ledger.trim("orders")
            await ledger.promote("orders")
            assert (await ledger.events(job_id))[-1]["type"] == "succeeded"
            await ledger.replay("orders")
            state = Throttle(5.0, 10, "max_replicas", "test", time.time())
            await throttle_record.Throttles(redis).apply("orders", state, ttl_s=30, announce=True)
            assert await throttle_record.Throttles(redis).read("orders") is not None
            await throttle_record.Throttles(redis).lift("orders")
            await refusals(redis, settings, ledger)
            await ConsumerGroup(redis, RouteKeys("orders").requests, GROUP, "c").keep(["0-1"])
            await run_calls(
                redis, [Promote(route=RouteKeys("orders"), now_ms=0, most=1)], wait=(0, 1)
            )
            view = ScalerView.from_dict({"desired_replicas": 1, "reason": "test"})
            await view_record.Views(redis).publish("orders", view, interval_s=1)
            assert (await routes_status(redis, settings))["orders"].scaler == view
            assert (await backlog.counters(redis, "orders")).added_total >= 1
            assert (await backlog.sampled(redis, "orders"))[1].added_total >= 1  # the script
            # The scaler's busy map (HGETALL, and HDEL of a gone worker) and
            # the predictor's history (RPUSH, LTRIM, LRANGE).
            await redis.hset(RouteKeys("orders").workers, "gone-1-abc", "0:1000")
            assert "gone-1-abc" not in await liveness.Liveness(redis).busy("orders")
            await history.History(redis).store("orders", [(time.time() - 10, 1.0)], keep=10)
            assert await history.History(redis).load("orders", 10, 10.0, time.time())
            # A worker taking a backlog: XREADGROUP from inside a script.
            await ensure_group(redis, RouteKeys("reports").requests, GROUP)
            assert len(await ledger.take("reports", "acl-check", 5)) >= 1
            await callbacks(ledger)
            assert route.mode == "sync"
        finally:
            await redis.aclose()


async def callbacks(ledger: Ledger) -> None:
    """A completion callback made due, claimed, retried, counted and ended."""
    job = Job(id=new_job_id("reports"), route="reports", method="POST", path="/reports")
    await ledger.admit(ledger.routes["reports"], job, callback="http://127.0.0.1:1/cb")
    await ledger.cancel(job.id)
    (due,) = (await ledger.claim_callbacks(RouteKeys("reports"), lease_s=1, most=5)).due
    await ledger.retry_callback(due, time.time())
    assert await ledger.due_callbacks("reports") == 1
    assert (await ledger.end_callback(due, delivered=True, detail="204")).ok
    assert (await ledger.events(job.id))[-1]["type"] == "callback_delivered"


async def refusals(redis: Connection, settings: Settings, ledger: Ledger) -> None:
    """A tenant refused by its quota on a proxy route and by a throttle on a
    queued one: the bucket scripts count refusals and track active tenants."""
    acme = TenantSettings(
        name="acme", api_key_sha256="0" * 64, quota=QuotaSettings(rate_per_s=0.001, burst=1)
    )
    await throttle_record.Throttles(redis).apply(
        "reports", Throttle(0.001, 1, "max_replicas", "t", 0.0), 30, False
    )
    causes = []
    for _ in range(2):
        try:
            await ledger.take_quota(settings.route("reads"), acme)
        except Refused as e:
            causes.append(e.cause)
        job = Job(id=new_job_id("reports"), route="reports", method="POST", path="/reports")
        try:
            await ledger.admit(settings.route("reports"), job, None, acme)
        except Refused as e:
            causes.append(e.cause)
    # The quota lets its one token go, then refuses; the throttle (a burst of
    # one, which a normal-priority request may not take) refuses both.
    assert causes == ["capacity", "quota", "capacity"]
    refused = int(await redis.get(RouteKeys("reports").refused) or 0)
    refused += int(await redis.get(RouteKeys("reads").refused) or 0)
    assert refused == 3
    await throttle_record.Throttles(redis).lift("reports")


async def test_the_whole_path_runs_over_tls_with_a_private_ca(
    tls_url: str, upstream: Upstream
) -> None:
    await whole_path(make_settings(tls_url), upstream)
    # Verification is on: without the CA the server is not trusted.
    untrusted = make_settings(tls_url.split("?")[0])
    redis = connect(untrusted.redis)
    try:
        with pytest.raises(RedisUnavailable, match="certificate"):
            await Ledger(redis, untrusted.routes).projection(new_job_id("orders"))
    finally:
        await redis.aclose()


async def test_the_whole_path_runs_as_the_documented_acl_user(
    acl_url: str, upstream: Upstream
) -> None:
    settings = make_settings(acl_url)
    await whole_path(settings, upstream)
    await held_to_its_rule(settings)


async def held_to_its_rule(settings: Settings) -> None:
    """The ACL user is held to its rule: other keys and other commands are refused."""
    redis = connect(settings.redis)
    try:
        with pytest.raises(NoPermissionError):
            await redis.set("not-ours", "1")
        with pytest.raises(NoPermissionError):
            await redis.flushall()
    finally:
        await redis.aclose()
