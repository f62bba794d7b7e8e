"""One trace across the queue, as an OTLP receiver gets it.

A real gateway and real worker processes, configured by ``OTEL_*`` variables
only, export to the receiver of the tests (``tests.otlp_receiver``, decoding
with opentelemetry-proto). Each test sends a request with a ``traceparent``
and checks the spans of that trace: who is whose parent, the link from each
attempt to the admission, the attributes, and the ``traceparent`` the
service and the callback receiver were actually sent.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry import trace
from yarl import URL

from tests.conftest import wait_until
from tests.gateway_process import GatewayProcess
from tests.otlp_receiver import Receiver, Span, tree
from tests.webhook_receiver import Receiver as CallbackReceiver
from tests.worker_processes import Workers
from tidegate.envelope import Job

SECRET = "whsec_" + "c2VjcmV0LWtleS1vZi10aGUtdGVzdHMtMTIzNDU2Nzg5MA=="
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def traceparent(trace: str = TRACE, flags: str = "01") -> str:
    return f"00-{trace}-{CLIENT_SPAN}-{flags}"


@dataclass
class Service:
    """The service behind the workers and the proxy route: records the trace
    headers of every call; ``/jobs/flaky`` answers 503 to a first attempt,
    ``/jobs/hold`` holds a first attempt until its worker is killed."""

    calls: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    """(path, traceparent, tracestate) of each call."""
    held: asyncio.Event = field(default_factory=asyncio.Event)
    killed: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, request: web.Request) -> web.Response:
        headers = request.headers
        self.calls.append((request.path, headers.get("traceparent"), headers.get("tracestate")))
        first = headers.get("Tidegate-Attempt", "1") == "1"
        if request.path == "/jobs/flaky" and first:
            return web.Response(status=503)
        if request.path == "/jobs/hold" and first:
            self.held.set()
            await self.killed.wait()
        if request.path == "/jobs/poison":
            return web.Response(status=500)
        return web.json_response({"ok": request.path})

    def traceparents(self, path: str) -> list[str | None]:
        return [parent for p, parent, _ in self.calls if p == path]


@dataclass
class Stack:
    receiver: Receiver
    service: Service
    callbacks: CallbackReceiver
    gateway: GatewayProcess
    jobs: Workers
    http: aiohttp.ClientSession

    async def spans(self, trace: str, want: dict[str, int], timeout_s: float = 30) -> list[Span]:
        """The trace's spans once it holds at least ``want[name]`` of each name."""

        def complete() -> bool:
            names = [s.name for s in self.receiver.trace(trace)]
            return all(names.count(name) >= n for name, n in want.items())

        try:
            await wait_until(complete, timeout_s, what=f"spans {want} of trace {trace}")
        except AssertionError:
            print(tree(self.receiver.trace(trace)))
            raise
        return self.receiver.trace(trace)


def one(spans: list[Span], name: str) -> Span:
    (span,) = [s for s in spans if s.name == name]
    return span


async def handler(job: Job) -> dict[str, str]:
    """The ``handled`` route's handler: a span of its own, through
    OpenTelemetry's API as an application would make one."""
    with trace.get_tracer("shop").start_as_current_span("price order") as span:
        span.set_attribute("job.traceparent", job.trace.traceparent if job.trace else "")
    return {"ok": job.id}


def config(redis_url: str, service: str, callbacks: str) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url},
        "routes": [
            {"name": "sync", "match": {"path_prefix": "/sync"}, "wait_s": 20},
            {"name": "handled", "match": {"path_prefix": "/handled"}, "wait_s": 20},
            {
                "name": "jobs",
                "match": {"path_prefix": "/jobs", "methods": ["POST"]},
                "mode": "async",
                "worker": {
                    "max_attempts": 3,
                    "backoff_base_s": 0.05,
                    "backoff_max_s": 0.1,
                    "visibility_timeout_s": 1.0,
                    "timeout_s": 30,
                    "compensate_path": "/compensate",
                },
                "callback": {"allow": [callbacks], "secret": SECRET, "timeout_s": 5},
            },
            {
                "name": "proxy",
                "match": {"path_prefix": "/proxy", "methods": ["GET"]},
                "mode": "proxy",
                "upstream": service,
            },
        ],
    }


@pytest.fixture
async def stack(redis_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    receiver = Receiver()
    service = Service()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", service.serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    callbacks = CallbackReceiver(SECRET)
    await callbacks.start()
    base = str(server.make_url("")).rstrip("/")
    raw = config(redis_url, base, callbacks.url())
    path = tmp_path / "tidegate.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    gateway = GatewayProcess(tmp_path, raw, env)
    sync = Workers(path, "sync", "--upstream", base, env=env)
    jobs = Workers(path, "jobs", "--upstream", base, env=env)
    handled = Workers(path, "handled", "--app", f"{__name__}:handler", env=env)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    try:
        await gateway.start(http)
        await sync.start_one()
        await jobs.start_one()
        await handled.start_one()
        yield Stack(receiver, service, callbacks, gateway, jobs, http)
    finally:
        service.killed.set()
        await http.close()
        await sync.close()
        await jobs.close()
        await handled.close()
        await gateway.close()
        await callbacks.close()
        await server.close()
        receiver.close()


async def test_a_sync_request_is_one_trace_from_the_client_to_the_service(stack: Stack) -> None:
    async with stack.http.post(
        stack.gateway.url("/sync/orders?token=secret"),
        data=b"{}",
        headers={
            "traceparent": traceparent(),
            "tracestate": "vendor=abc",
            "X-Forwarded-For": "203.0.113.9",  # the client's word: not its address
        },
    ) as r:
        assert r.status == 200, await r.text()
        job_id = r.headers["Tidegate-Job"]
    spans = await stack.spans(
        TRACE, {"POST /sync": 1, "send sync": 1, "process sync": 1, "POST": 1, "finish sync": 1}
    )
    server, send = one(spans, "POST /sync"), one(spans, "send sync")
    process, call, finish = (
        one(spans, "process sync"),
        one(spans, "POST"),
        one(spans, "finish sync"),
    )
    assert (server.kind, server.parent_id, server.service) == (
        "server",
        CLIENT_SPAN,
        "tidegate-gateway",
    )
    assert server.attr("http.route") == "/sync"
    assert server.attr("http.response.status_code") == 200
    assert server.attr("url.path") == "/sync/orders"  # no query: it may carry secrets
    assert server.attr("client.address") == "127.0.0.1"
    assert (send.kind, send.parent_id) == ("producer", server.span_id)
    assert send.attr("messaging.destination.name") == "sync"
    assert send.attr("messaging.message.id") == job_id
    assert send.attr("messaging.system") == "tidegate"
    assert (process.kind, process.parent_id, process.service) == (
        "consumer",
        send.span_id,
        "tidegate-worker",
    )
    assert process.links == ((TRACE, send.span_id),)  # the time queued
    assert process.attr("messaging.message.id") == job_id
    assert process.attr("tidegate.job.attempt") == 1
    assert process.attr("tidegate.job.state") == "succeeded"
    assert (call.kind, call.parent_id) == ("client", process.span_id)
    assert call.attr("http.response.status_code") == 200
    assert "token" not in call.attr("url.full")
    assert (finish.kind, finish.parent_id) == ("internal", process.span_id)
    assert not any(s.error for s in spans)
    # what the service was sent: the call's span as its parent, the state kept
    assert stack.service.calls == [("/sync/orders", f"00-{TRACE}-{call.span_id}-01", "vendor=abc")]


async def test_a_handlers_own_spans_nest_under_its_attempt(stack: Stack) -> None:
    async with stack.http.post(
        stack.gateway.url("/handled/order"), data=b"{}", headers={"traceparent": traceparent()}
    ) as r:
        assert r.status == 200, await r.text()
    spans = await stack.spans(TRACE, {"send handled": 1, "process handled": 1, "price order": 1})
    send, process = one(spans, "send handled"), one(spans, "process handled")
    inner = one(spans, "price order")
    assert (inner.parent_id, inner.service) == (process.span_id, "tidegate-worker")
    # job.trace: the context the job was admitted with, the send span's
    assert inner.attr("job.traceparent") == f"00-{TRACE}-{send.span_id}-01"


async def test_an_async_job_retried_then_called_back_stays_one_trace(stack: Stack) -> None:
    async with stack.http.post(
        stack.gateway.url("/jobs/flaky"),
        data=b"{}",
        headers={"traceparent": traceparent(), "Tidegate-Callback": stack.callbacks.url()},
    ) as r:
        assert r.status == 202, await r.text()
        job_id = (await r.json())["id"]
    spans = await stack.spans(
        TRACE, {"send jobs": 1, "process jobs": 2, "POST": 2, "callback succeeded": 1}
    )
    send = one(spans, "send jobs")
    attempts = sorted(
        (s for s in spans if s.name == "process jobs"), key=lambda s: s.attr("tidegate.job.attempt")
    )
    assert [a.attr("tidegate.job.attempt") for a in attempts] == [1, 2]
    assert [a.attr("tidegate.job.state") for a in attempts] == ["retried", "succeeded"]
    assert [a.error for a in attempts] == [True, False]
    for attempt in attempts:
        assert attempt.parent_id == send.span_id
        assert attempt.links == ((TRACE, send.span_id),)
    calls = sorted((s for s in spans if s.name == "POST"), key=lambda s: s.start_ns)
    assert [c.parent_id for c in calls] == [a.span_id for a in attempts]
    assert [c.attr("http.response.status_code") for c in calls] == [503, 200]
    assert stack.service.traceparents("/jobs/flaky") == [
        f"00-{TRACE}-{c.span_id}-01" for c in calls
    ]
    callback = one(spans, "callback succeeded")
    assert (callback.kind, callback.parent_id) == ("client", send.span_id)
    assert callback.attr("messaging.message.id") == job_id
    await wait_until(lambda: bool(stack.callbacks.delivered()), 10, what="the callback")
    (delivery,) = stack.callbacks.delivered()
    assert delivery.traceparent == f"00-{TRACE}-{callback.span_id}-01"


async def test_a_job_taken_over_from_a_killed_worker_continues_the_trace(stack: Stack) -> None:
    async with stack.http.post(
        stack.gateway.url("/jobs/hold"), data=b"{}", headers={"traceparent": traceparent()}
    ) as r:
        assert r.status == 202
    await asyncio.wait_for(stack.service.held.wait(), 30)
    first = stack.jobs.procs[0]
    first.send_signal(signal.SIGKILL)  # mid-call: its spans die with it
    await first.wait()
    stack.service.killed.set()
    await stack.jobs.start_one()  # takes the job over once it has been held too long
    spans = await stack.spans(TRACE, {"send jobs": 1, "process jobs": 1, "POST": 1})
    send, process = one(spans, "send jobs"), one(spans, "process jobs")
    assert process.attr("tidegate.job.attempt") == 2  # the killed worker's attempt counts
    assert process.attr("tidegate.job.state") == "succeeded"
    assert (process.parent_id, process.links) == (send.span_id, ((TRACE, send.span_id),))
    parents = stack.service.traceparents("/jobs/hold")
    assert len(parents) == 2
    assert all(p is not None and p.split("-")[1] == TRACE for p in parents)
    assert parents[1] == f"00-{TRACE}-{one(spans, 'POST').span_id}-01"


async def test_a_dead_lettered_job_is_compensated_in_its_trace(stack: Stack) -> None:
    async with stack.http.post(
        stack.gateway.url("/jobs/poison"), data=b"{}", headers={"traceparent": traceparent()}
    ) as r:
        assert r.status == 202
    spans = await stack.spans(TRACE, {"process jobs": 3, "compensate jobs": 1})
    send, compensation = one(spans, "send jobs"), one(spans, "compensate jobs")
    states = sorted(s.attr("tidegate.job.state") for s in spans if s.name == "process jobs")
    assert states == ["dead_lettered", "retried", "retried"]
    assert (compensation.kind, compensation.parent_id) == ("consumer", send.span_id)
    assert compensation.links == ((TRACE, send.span_id),)
    assert compensation.attr("tidegate.compensation") == "done"
    assert stack.service.traceparents("/compensate") == [f"00-{TRACE}-{compensation.span_id}-01"]


async def test_a_proxied_request_is_a_server_and_a_client_span(stack: Stack) -> None:
    async with stack.http.get(
        stack.gateway.url("/proxy/item"), headers={"traceparent": traceparent()}
    ) as r:
        assert r.status == 200
    spans = await stack.spans(TRACE, {"GET /proxy": 1, "GET": 1})
    server, call = one(spans, "GET /proxy"), one(spans, "GET")
    assert (server.parent_id, call.parent_id, call.kind) == (CLIENT_SPAN, server.span_id, "client")
    assert stack.service.traceparents("/proxy/item") == [f"00-{TRACE}-{call.span_id}-01"]


@pytest.mark.parametrize(
    ("method", "path", "name", "status"),
    [
        ("POST", "/nowhere", "POST", 404),  # no route
        ("GET", "/sync/x", "GET", 404),  # the route takes no GET
        ("PROPFIND", "/sync/x", "HTTP", 404),  # WebDAV, not a standard method: _OTHER
        ("POST", "/_tidegate/jobs/x/y", "POST", 404),  # the job API's prefix
        ("POST", "/sync/%2e%2e/admin", "POST", 400),  # a path that climbs out
    ],
)
async def test_a_refused_request_is_a_server_span_with_its_status(
    stack: Stack, method: str, path: str, name: str, status: int
) -> None:
    url = URL(stack.gateway.url(path), encoded=True)  # sent as written, not resolved
    async with stack.http.request(
        method, url, data=b"{}", headers={"traceparent": traceparent()}
    ) as r:
        assert r.status == status
    (server,) = await stack.spans(TRACE, {name: 1})
    assert (server.kind, server.parent_id) == ("server", CLIENT_SPAN)
    assert server.attr("http.response.status_code") == status
    assert not server.error  # the client's mistake, not the gateway's
    assert server.attr("http.route") is None
    if name == "HTTP":
        assert server.attr("http.request.method") == "_OTHER"
        assert server.attr("http.request.method_original") == method
    assert stack.service.calls == []


@pytest.mark.parametrize(
    "sent",
    [
        None,
        f"00-{TRACE}-{CLIENT_SPAN}",  # too short
        f"00-{TRACE.upper()}-{CLIENT_SPAN}-01",  # upper-case hex
        f"00-{'0' * 32}-{CLIENT_SPAN}-01",  # all-zero trace id
        f"ff-{TRACE}-{CLIENT_SPAN}-01",  # version ff
    ],
)
async def test_without_a_valid_traceparent_the_gateway_starts_the_trace(
    stack: Stack, sent: str | None
) -> None:
    headers = {} if sent is None else {"traceparent": sent}
    async with stack.http.post(stack.gateway.url("/sync/new"), data=b"{}", headers=headers) as r:
        assert r.status == 200
    (parent,) = stack.service.traceparents("/sync/new")
    assert parent is not None
    trace = parent.split("-")[1]
    assert trace != TRACE
    spans = await stack.spans(trace, {"POST /sync": 1, "POST": 1})
    assert one(spans, "POST /sync").parent_id == ""  # the root
    # sampled (bit 0); the SDK also sets bit 1 (a random trace id, W3C level 2)
    assert parent.startswith(f"00-{trace}-{one(spans, 'POST').span_id}-")
    assert int(parent[-2:], 16) & 1


async def test_a_trace_the_client_did_not_sample_is_passed_on_and_not_exported(
    stack: Stack,
) -> None:
    async with stack.http.post(
        stack.gateway.url("/sync/quiet"),
        data=b"{}",
        headers={"traceparent": traceparent(flags="00")},
    ) as r:
        assert r.status == 200
    (parent,) = stack.service.traceparents("/sync/quiet")
    assert parent is not None
    _, trace, span_id, flags = parent.split("-")
    assert (trace, flags) == (TRACE, "00")
    assert span_id != CLIENT_SPAN  # continued by the worker's call, unrecorded
    # a sampled request sent after it is exported; the unsampled one never is
    async with stack.http.post(
        stack.gateway.url("/sync/loud"), data=b"{}", headers={"traceparent": traceparent("a" * 32)}
    ) as r:
        assert r.status == 200
    await stack.spans("a" * 32, {"POST /sync": 1, "process sync": 1, "finish sync": 1})
    assert stack.receiver.trace(TRACE) == []
