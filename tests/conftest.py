"""Fixtures: a real redis-server, settings, the sample service, gateways and workers.

Tests mirror the source: ``tests/unit/<part>/`` for pure code (marked
``unit``), ``tests/integration/<part>/`` for code against real servers
(marked ``integration``); helpers shared by both live here and beside this
file (``redis_server``, ``tcp_proxy``, ``fake_kube``).

Most tests share one redis-server for the session and get a flushed database;
fault tests ask ``own_redis`` for a server of their own to stop and restart.
The gateway runs in process on real sockets (aiohttp's TestServer), the
worker as a Consumer task: everything talks over real TCP.

Tests run on asyncio's event loop; the parts run on uvloop's in production
(``tidegate.process``). A module marked ``both_loops`` runs each of its
tests on both: the modules whose code speaks to sockets through protocols of
its own (the Redis link, the upstream client, the proxy and the relay), and
the hostile-client tests of request handling (paths, bad requests, slow
clients, tenants and secrets).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import uvloop
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from gateway.app import build_apps
from gateway.context import GATEWAY, Gateway
from gateway.slow_clients import guard_server
from shell.sample_service import STATE, ServiceState
from shell.sample_service import build_app as build_sample
from tests.redis_cluster import RedisCluster
from tests.redis_sentinel import RedisSentinel
from tests.redis_server import RedisServer, ServerGroup
from tidegate.errors import RedisFull
from tidegate.ledger import Ledger
from tidegate.ledger.client import Connection, connect
from tidegate.settings import Settings, parse_settings
from worker.compensator import Compensator
from worker.consumer import Consumer, Executor
from worker.relay import Relay

ASYNCIO_LOOP = {"asyncio": asyncio.new_event_loop}
BOTH_LOOPS = {**ASYNCIO_LOOP, "uvloop": uvloop.new_event_loop}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Both loops for the tests marked ``both_loops``, asyncio's for the rest
    (a single loop adds nothing to a test's id)."""
    return BOTH_LOOPS if item.get_closest_marker("both_loops") else ASYNCIO_LOOP


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by where it lives: ``tests/unit/`` (no server, no
    network: ``pytest -m unit`` runs in seconds), ``tests/simulator/`` (the
    scaling policy in the simulated world: pure, but seconds of arithmetic)
    or ``tests/integration/``."""
    tests = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(tests).parts[0]
        kind = tier if tier in ("unit", "simulator") else "integration"
        item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


Group = TypeVar("Group", bound=ServerGroup)


def _running(group: Group) -> Iterator[Group]:
    try:
        group.start()
        yield group
    finally:
        group.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """One local Redis Cluster (3 masters, 3 replicas) for the session."""
    yield from _running(RedisCluster())


@pytest.fixture
def own_cluster() -> Iterator[RedisCluster]:
    """A cluster of the test's own, to kill nodes of."""
    yield from _running(RedisCluster())


@pytest.fixture
def cluster_settings(redis_cluster: RedisCluster) -> Settings:
    """The usual routes, on the cluster (flushed), and two more whose hash tags
    fall on the other two masters' slots (orders, reports and fail share one)."""
    redis_cluster.flush()
    extra = tuple(
        {"name": name, "match": {"path_prefix": "/" + name, "methods": ["POST"]}, "mode": "sync"}
        for name in ("jobs", "exports")
    )
    return make_settings(redis_cluster.url, redis_mode="cluster", extra_routes=extra)


@pytest.fixture
def redis_sentinel() -> Iterator[RedisSentinel]:
    """A master, two replicas and three sentinels of the test's own (it may kill the master)."""
    yield from _running(RedisSentinel())


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> str:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    await client.script_flush()
    await client.aclose()
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of this test's own, with appendonly, to stop and restart."""
    server = RedisServer(appendonly=True)
    server.start()
    yield server
    server.close()


def make_settings(
    redis_url: str,
    *,
    redis_mode: str = "standalone",
    redis_options: dict[str, Any] | None = None,
    extra_routes: tuple[dict[str, Any], ...] = (),
    **route_overrides: Any,
) -> Settings:
    """Two queued routes (sync orders, async reports) and a proxy route."""
    orders = {
        "name": "orders",
        "match": {"path_prefix": "/orders", "methods": ["POST", "PUT"]},
        "mode": "sync",
        "wait_s": 5,
        "max_body_bytes": 1024,
        "worker": {"max_attempts": 3, "timeout_s": 2, "backoff_base_s": 0.01},
    }
    orders.update(route_overrides)
    return parse_settings(
        {
            "redis": {
                "url": redis_url,
                "connect_timeout_s": 0.5,
                "mode": redis_mode,
                **(redis_options or {}),
            },
            "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"},
            "routes": [
                orders,
                {
                    "name": "reports",
                    "match": {"path_prefix": "/reports", "methods": ["POST"]},
                    "mode": "async",
                },
                {
                    "name": "fail",
                    "match": {"path_prefix": "/fail", "methods": ["POST"]},
                    "mode": "sync",
                    "wait_s": 5,
                    "worker": {
                        "max_attempts": 2,
                        "timeout_s": 2,
                        "backoff_base_s": 0.01,
                        "compensate_path": "/compensate",
                        "visibility_timeout_s": 0.5,
                    },
                },
                {
                    "name": "reads",
                    "match": {"path_prefix": "/orders", "methods": ["GET"]},
                    "mode": "proxy",
                    "upstream": "http://127.0.0.1:1",  # replaced by tests that proxy
                    "max_body_bytes": 1024,
                },
                *extra_routes,
            ],
        },
        env={},
    )


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url)


def on_both(request: pytest.FixtureRequest, redis_url: str) -> Settings:
    """For a ``settings`` fixture with params standalone and cluster: the usual
    settings on one server, or on the session's Redis Cluster."""
    if request.param == "standalone":
        return make_settings(redis_url)
    cluster: Settings = request.getfixturevalue("cluster_settings")
    return cluster


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Connection]:
    client = connect(settings.redis)
    yield client
    await client.aclose()


@pytest.fixture
async def ledger(redis: Connection, settings: Settings) -> Ledger:
    return Ledger(redis, settings.routes)


class Upstream:
    def __init__(self, server: TestServer) -> None:
        self.server = server

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def state(self) -> ServiceState:
        return self.server.app[STATE]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = TestServer(build_sample(work_ms=5, report_ms=5), host="127.0.0.1")
    await server.start_server()
    yield Upstream(server)
    await server.close()


class RunningGateway:
    def __init__(self, public: TestServer, admin: TestServer, http: aiohttp.ClientSession) -> None:
        self.public = public
        self.admin = admin
        self.http = http

    @property
    def gw(self) -> Gateway:
        return self.public.app[GATEWAY]

    def url(self, path: str) -> str:
        return str(self.public.make_url(path))

    def admin_url(self, path: str) -> str:
        return str(self.admin.make_url(path))

    async def job_state(self, job_id: str) -> str:
        """The job's state through the job API ("" when it answers no 200)."""
        async with self.http.get(self.url(f"/_tidegate/jobs/{job_id}")) as r:
            if r.status != 200:
                return ""
            state: str = (await r.json())["state"]
            return state


@asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    public_app, admin_app = build_apps(settings)
    public = TestServer(public_app, host="127.0.0.1")
    admin = TestServer(admin_app, host="127.0.0.1")
    await public.start_server()
    await admin.start_server()
    assert public.runner is not None
    assert public.runner.server is not None
    guard_server(public.runner.server, settings.gateway)  # as gateway.app.serve does
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
    running = RunningGateway(public, admin, http)
    await running.gw.waiter.subscribed.wait()
    try:
        yield running
    finally:
        await http.close()
        await admin.close()
        await public.close()


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    async with running_gateway(settings) as running:
        yield running


async def _both(*steps: Awaitable[None]) -> None:
    await asyncio.gather(*steps)


class RunningWorker:
    compensator: Compensator

    def __init__(self, consumer: Consumer, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        self.consumer = consumer
        self.task = task
        self.stop = stop

    async def close(self) -> None:
        self.stop.set()
        await self.task


@asynccontextmanager
async def running_worker(
    settings: Settings, route: str, executor: Executor, **kwargs: Any
) -> AsyncIterator[RunningWorker]:
    from tidegate.keys import GROUP, parts_of
    from tidegate.ledger.groups import ensure_group

    client = connect(settings.redis, extra_timeout_s=1.0)
    # Redis out of memory refuses even an existing group's XGROUP CREATE: the
    # consumer's own reader creates the group then, once Redis takes writes.
    with contextlib.suppress(RedisFull):
        for keys in parts_of(settings.route(route)):
            await ensure_group(client, keys.requests, GROUP)
    ledger = Ledger(client, settings.routes, batched=True)  # as worker.main runs it
    ledger.open()
    consumer = Consumer(settings.route(route), ledger, executor, **kwargs)
    compensator = Compensator(settings.route(route), ledger, executor, consumer.name)
    stop = asyncio.Event()
    task = asyncio.create_task(_both(consumer.run(stop, grace_s=5), compensator.run(stop)))
    running = RunningWorker(consumer, task, stop)
    running.compensator = compensator
    try:
        yield running
    finally:
        await running.close()
        await ledger.close()
        await client.aclose()


@pytest.fixture
def relay_worker(settings: Settings, upstream: Upstream) -> Callable[..., Any]:
    def start(route: str = "orders", **kwargs: Any) -> Any:
        return running_worker(settings, route, Relay(upstream.url, 2.0), **kwargs)

    return start


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool],
    timeout_s: float = 10.0,
    what: str = "condition",
) -> None:
    """Poll an observable condition (a plain or an async predicate); fail the
    test (not hang) if it never holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holds = predicate()
        if await holds if inspect.isawaitable(holds) else holds:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


__all__ = ["RunningGateway", "Upstream", "make_settings", "running_gateway", "wait_until"]


@pytest.fixture(autouse=True)
async def no_stray_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves tasks running: every part must stop what it starts."""
    yield
    current = asyncio.current_task()
    stray = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if stray:
        await asyncio.wait(stray, timeout=1.0)  # tasks finishing their cancellation
    stray = [t for t in stray if not t.done()]
    assert not stray, f"tasks left running: {[t.get_name() for t in stray]}"
