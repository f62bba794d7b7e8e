"""Completion callbacks end to end: real Redis (one server and the Cluster), a
receiver that verifies every signature with its own implementation of
Standard Webhooks (``tests.webhook_receiver``), real worker processes.

Time that a retry or a lease waits for is stepped, not slept through: the
sender's ``pass_once`` takes the time to claim at.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.conftest import running_gateway, running_worker, wait_until
from tests.webhook_receiver import Receiver
from tests.worker_processes import Workers
from tidegate.envelope import Failure, Job, Reply
from tidegate.keys import parts_of
from tidegate.ledger import Ledger
from tidegate.ledger.client import connect
from tidegate.settings import RouteSettings, Settings, parse_settings
from worker.callback_delivery import DEFER_S, LEASE_MARGIN_S, CallbackSender
from worker.handler import Handler
from worker.metrics import WorkerMetrics

SECRET = "whsec_" + "c2VjcmV0LWtleS1vZi10aGUtdGVzdHMtMTIzNDU2Nzg5MA=="


def hooks_route(allow: list[str], **callback: Any) -> RouteSettings:
    raw = {
        "name": "hooks",
        "match": {"path_prefix": "/hooks", "methods": ["POST"]},
        "mode": "async",
        "worker": {"max_attempts": 2, "backoff_base_s": 0.01, "timeout_s": 2},
        "callback": {"allow": allow, "secret": SECRET, "timeout_s": 1, **callback},
    }
    return parse_settings({"routes": [raw]}, env={}).routes[0]


def with_route(settings: Settings, route: RouteSettings) -> Settings:
    return dataclasses.replace(settings, routes=(*settings.routes, route))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(SECRET)
    await found.start()
    yield found
    await found.close()


@contextlib.asynccontextmanager
async def sender_of(
    settings: Settings, resolver: AbstractResolver | None = None
) -> AsyncIterator[tuple[CallbackSender, Ledger]]:
    client = connect(settings.redis)
    ledger = Ledger(client, settings.routes)
    sender = CallbackSender(settings.route("hooks"), ledger, WorkerMetrics(), resolver=resolver)
    await sender.open()
    try:
        yield sender, ledger
    finally:
        await sender.close()
        await client.aclose()


async def admit(
    ledger: Ledger, url: str, path: str = "/hooks/x", headers: tuple[tuple[str, str], ...] = ()
) -> str:
    route = ledger.routes["hooks"]
    job = Job(ledger.new_job_id(route), "hooks", "POST", path, headers=headers, body=b"{}")
    admitted = await ledger.admit(route, job, callback=url)
    return admitted.job_id


async def cancelled_job(ledger: Ledger, url: str) -> str:
    """A job that asked for a callback and has ended (cancelled while queued)."""
    job_id = await admit(ledger, url)
    await ledger.cancel(job_id)
    return job_id


async def deliver_all(sender: CallbackSender, now_s: float | None = None) -> None:
    """A claim of every partition at ``now_s``, and its deliveries awaited;
    again, past their deferral, while any were deferred for want of a slot
    for their receiver (more than ``MAX_PER_RECEIVER`` to one at once)."""
    deferred = sender.metrics.callbacks.labels(sender.route.name, "deferred")
    for _ in range(20):
        before = deferred._value.get()
        for keys in parts_of(sender.route):
            await sender.pass_once(keys, now_s)
        await sender.wait_idle()
        if deferred._value.get() == before:
            return
        now_s = time.time() + 2 * DEFER_S + 0.01  # past every deferral made
    raise AssertionError("callbacks still deferred after 20 rounds")


async def callback_events(ledger: Ledger, job_id: str) -> list[dict[str, str]]:
    return [e for e in await ledger.events(job_id) if e["type"].startswith("callback_")]


async def handler(job: Job) -> Reply | Failure:
    if job.path.endswith("/fail"):
        return Failure("refused for good", False)  # final: dead-lettered at once
    return Reply(201, (), b"made")


async def undo(job: Job, error: str) -> Reply:
    return Reply(200, (), b"undone")


async def test_every_terminal_state_is_delivered_once_signed_and_recorded(
    settings: Settings, receiver: Receiver
) -> None:
    settings = with_route(settings, hooks_route([receiver.url("/cb")]))
    async with (
        sender_of(settings) as (sender, ledger),
        running_worker(settings, "hooks", Handler(handler, undo)),
    ):
        ok = await admit(ledger, receiver.url("/cb/ok"), "/hooks/ok")
        failing = await admit(ledger, receiver.url("/cb/fail"), "/hooks/fail")
        silent = await admit(ledger, "", "/hooks/quiet")  # asked for no callback

        async def ended() -> bool:
            states = await ledger.states([ok, failing, silent])
            return states == ["succeeded", "compensated", "succeeded"]

        await wait_until(ended, what="the jobs to end")
        await deliver_all(sender)

    expected = {f"{ok}.succeeded", f"{failing}.dead_lettered", f"{failing}.compensated"}
    got = [d.message_id for d in receiver.delivered()]
    assert sorted(got) == sorted(expected)  # once each, nothing for the job without one
    assert receiver.unverified == 0
    by_id = {d.message_id: d for d in receiver.delivered()}
    view = by_id[f"{ok}.succeeded"].body
    assert view["type"] == "job.succeeded"
    assert view["data"]["id"] == ok
    assert view["data"]["state"] == "succeeded"
    assert view["data"]["status"] == 201
    assert view["data"]["links"]["result"] == f"/_tidegate/jobs/{ok}/result"
    assert by_id[f"{failing}.dead_lettered"].path == "/cb/fail"
    assert by_id[f"{failing}.dead_lettered"].body["type"] == "job.dead_lettered"
    async with sender_of(settings) as (sender, ledger):
        events = await callback_events(ledger, ok)
        assert [(e["type"], e["for"], e["attempts"], e["status"]) for e in events] == [
            ("callback_delivered", "succeeded", "1", "204")
        ]
        fail_events = await callback_events(ledger, failing)
        assert sorted(e["for"] for e in fail_events) == ["compensated", "dead_lettered"]
        assert await callback_events(ledger, silent) == []
        assert await ledger.due_callbacks("hooks") == 0
        projection = await ledger.projection(ok)
        assert projection["callback_succeeded"] == "delivered:1"
        # a second pass finds nothing: delivered means ended
        await deliver_all(sender, time.time() + 3600)
    assert len(receiver.deliveries) == 3


async def test_cancelled_and_expired_jobs_call_back_too(
    settings: Settings, receiver: Receiver
) -> None:
    settings = with_route(settings, hooks_route([receiver.url()]))
    async with sender_of(settings) as (sender, ledger):
        cancelled = await admit(ledger, receiver.url("/cb/c"))
        await ledger.cancel(cancelled)
        expired = await admit(ledger, receiver.url("/cb/e"))
        actions = await ledger.reconcile("hooks", now_s=time.time() + 10_000)
        assert actions["expired"] == 1
        await deliver_all(sender)
    assert sorted(d.message_id for d in receiver.delivered()) == sorted(
        [f"{cancelled}.cancelled", f"{expired}.expired"]
    )


async def test_a_callback_carries_the_clients_trace_context(
    settings: Settings, receiver: Receiver
) -> None:
    """The receiver's spans join the trace of the request that admitted the
    job (the gateway checked the context; the projection keeps it)."""
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    settings = with_route(settings, hooks_route([receiver.url()]))
    async with sender_of(settings) as (sender, ledger):
        traced = await admit(ledger, receiver.url("/cb/t"), headers=(("traceparent", traceparent),))
        plain = await admit(ledger, receiver.url("/cb/p"))
        for job_id in (traced, plain):
            await ledger.cancel(job_id)
        await deliver_all(sender)
    by_path = {d.path: d.traceparent for d in receiver.delivered()}
    assert by_path == {"/cb/t": traceparent, "/cb/p": None}


async def test_a_receiver_that_fails_twice_gets_it_on_the_third_attempt(
    settings: Settings, receiver: Receiver
) -> None:
    settings = with_route(settings, hooks_route([receiver.url()]))
    async with sender_of(settings) as (sender, ledger):
        job_id = await cancelled_job(ledger, receiver.url())
        receiver.fail_first[f"{job_id}.cancelled"] = 2
        await deliver_all(sender)
        assert [d.status for d in receiver.deliveries] == [503]
        await deliver_all(sender)  # not due again yet: nothing is sent
        assert len(receiver.deliveries) == 1
        await deliver_all(sender, time.time() + 3)  # past the first backoff (<= 1 s)
        await deliver_all(sender, time.time() + 10)  # past the second (<= 2 s)
        assert [d.status for d in receiver.deliveries] == [503, 503, 204]
        assert {d.message_id for d in receiver.deliveries} == {f"{job_id}.cancelled"}
        (event,) = await callback_events(ledger, job_id)
        assert (event["type"], event["attempts"]) == ("callback_delivered", "3")
        outcomes = sender.metrics.callbacks
        assert outcomes.labels("hooks", "retried")._value.get() == 2
        assert outcomes.labels("hooks", "delivered")._value.get() == 1


async def test_a_receiver_that_never_answers_well_is_given_up_and_recorded(
    settings: Settings, receiver: Receiver
) -> None:
    settings = with_route(settings, hooks_route([receiver.url()], give_up_after_s=5))
    async with sender_of(settings) as (sender, ledger):
        job_id = await cancelled_job(ledger, receiver.url())
        receiver.fail_first[f"{job_id}.cancelled"] = 100
        for step in range(20):  # each pass at a later time: backoffs pass, the bound comes
            await deliver_all(sender, time.time() + step * 2)
            if await ledger.due_callbacks("hooks") == 0:
                break
        (event,) = await callback_events(ledger, job_id)
        assert event["type"] == "callback_failed"
        assert event["error"] == "the receiver answered 503"
        assert int(event["attempts"]) == len(receiver.deliveries) >= 2
        assert sender.metrics.callbacks.labels("hooks", "failed")._value.get() == 1
        view = (await ledger.projection(job_id))["callback_cancelled"]
        assert view.startswith("failed:")


async def test_a_slow_receiver_holds_no_worker(settings: Settings, receiver: Receiver) -> None:
    """Jobs keep running while every callback delivery hangs."""
    settings = with_route(settings, hooks_route([receiver.url()], timeout_s=30))
    receiver.hold = True
    stop = asyncio.Event()
    async with (
        sender_of(settings) as (sender, ledger),
        running_worker(settings, "hooks", Handler(handler), concurrency=1),
    ):
        first = await admit(ledger, receiver.url())
        await wait_until(lambda: _state_is(ledger, first, "succeeded"), what="the first job")
        run = asyncio.create_task(sender.run(stop))
        await asyncio.wait_for(receiver.arrived.wait(), 10)  # its callback hangs now
        more = [await admit(ledger, receiver.url()) for _ in range(5)]

        async def all_done() -> bool:
            return set(await ledger.states(more)) == {"succeeded"}

        await wait_until(all_done, what="jobs to run while the receiver hangs")
        receiver.released.set()
        await wait_until(
            lambda: _count_is(receiver, 6), what="every callback once the receiver answers"
        )
        stop.set()
        await run
    assert sorted(d.message_id for d in receiver.delivered()) == sorted(
        f"{j}.succeeded" for j in [first, *more]
    )


async def _state_is(ledger: Ledger, job_id: str, state: str) -> bool:
    return (await ledger.states([job_id]))[0] == state


async def _count_is(receiver: Receiver, n: int) -> bool:
    return len(receiver.delivered()) >= n


class FakeResolver(AbstractResolver):
    """Names to addresses, as a DNS server under an attacker's control might answer."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        return None


async def test_metadata_and_link_local_addresses_are_never_called(
    settings: Settings, receiver: Receiver
) -> None:
    port = receiver.port
    allow = [
        "http://169.254.169.254/",
        f"http://metadata.test:{port}/",
        f"http://rebound.test:{port}/",
        f"http://[::ffff:169.254.169.254]:{port}/",
    ]
    resolver = FakeResolver(
        {
            "metadata.test": ["169.254.169.254", "fd00:ec2::254"],
            # one good and one forbidden answer: only the good one is used
            "rebound.test": ["169.254.169.254", "127.0.0.1"],
        }
    )
    settings = with_route(settings, hooks_route(allow))
    async with sender_of(settings, resolver) as (sender, ledger):
        literal = await admit(ledger, "http://169.254.169.254/latest/meta-data/")
        named = await admit(ledger, f"http://metadata.test:{port}/cb")
        rebound = await admit(ledger, f"http://rebound.test:{port}/cb")
        mapped = await admit(ledger, f"http://[::ffff:169.254.169.254]:{port}/cb")
        for job_id in (literal, named, rebound, mapped):
            await ledger.cancel(job_id)
        await deliver_all(sender)
        (event,) = await callback_events(ledger, literal)
        assert event["type"] == "callback_failed"
        assert "169.254.169.254 is link-local" in event["error"]
        (event,) = await callback_events(ledger, mapped)
        assert "embedded in" in event["error"]
        assert sender.metrics.callbacks.labels("hooks", "refused")._value.get() == 2
        # a name that resolves only to forbidden addresses fails its attempt
        assert await callback_events(ledger, named) == []
        assert sender.metrics.callbacks.labels("hooks", "retried")._value.get() == 1
    assert [d.message_id for d in receiver.deliveries] == [f"{rebound}.cancelled"]


async def test_a_callback_due_when_its_job_ended_is_not_lost_with_the_process(
    settings: Settings, receiver: Receiver
) -> None:
    """The job ends with no deliverer alive (its worker died right after):
    the callback was made due by the same call that ended the job."""
    settings = with_route(settings, hooks_route([receiver.url()]))
    async with running_worker(settings, "hooks", Handler(handler)):
        client = connect(settings.redis)
        ledger = Ledger(client, settings.routes)
        job_id = await admit(ledger, receiver.url())
        await wait_until(lambda: _state_is(ledger, job_id, "succeeded"), what="the job")
        await client.aclose()
    assert receiver.deliveries == []
    async with sender_of(settings) as (sender, _):
        await deliver_all(sender)
    assert [d.message_id for d in receiver.delivered()] == [f"{job_id}.succeeded"]


async def test_replay_rebuilds_callback_outcomes_and_calls_no_one(
    settings: Settings, receiver: Receiver
) -> None:
    settings = with_route(settings, hooks_route([receiver.url()]))
    async with sender_of(settings) as (sender, ledger):
        job_id = await cancelled_job(ledger, receiver.url())
        await deliver_all(sender)
        before = await ledger.projection(job_id)
        report = await ledger.replay("hooks")
        assert report.refused == 0
        assert await ledger.projection(job_id) == before
        assert await ledger.due_callbacks("hooks") == 0
        await deliver_all(sender, time.time() + 3600)
    assert len(receiver.deliveries) == 1


@pytest.fixture
def standalone(redis_url: str) -> Settings:
    from tests.conftest import make_settings

    return make_settings(redis_url)


BAD_CALLBACKS = [
    "http://127.0.0.1:1/cb",  # another port
    "http://localhost:{port}/cb",  # another host name for the same place
    "https://127.0.0.1:{port}/cb",  # another scheme
    "http://127.0.0.1:{port}/cbx",  # not on a segment boundary
    "http://127.0.0.1:{port}/cb/../admin",
    "http://127.0.0.1:{port}/cb/%2e%2e/admin",
    "http://127.0.0.1:{port}/cb/%252E%252E/admin",
    "http://127.0.0.1:{port}/cb/%2F..%2Fadmin",
    "http://user:pw@127.0.0.1:{port}/cb",
    "http://127.0.0.1:{port}@169.254.169.254/cb",
    "http://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/cb",
    "/cb",
    "",
]


@pytest.mark.parametrize("template", BAD_CALLBACKS)
async def test_a_url_outside_the_allow_list_is_a_400_and_nothing_is_admitted(
    standalone: Settings, receiver: Receiver, template: str
) -> None:
    settings = with_route(standalone, hooks_route([receiver.url("/cb")]))
    url = template.format(port=receiver.port)
    async with running_gateway(settings) as gw:
        async with gw.http.post(
            gw.url("/hooks/x"), data=b"{}", headers={"Tidegate-Callback": url}
        ) as r:
            assert r.status == 400
            assert r.content_type == "application/problem+json"
            problem = await r.json()
        assert problem["type"].endswith("bad-callback")
        assert "Nothing was admitted" in problem["detail"]
        assert await gw.gw.ledger._redis.xlen(parts_of(settings.route("hooks"))[0].requests) == 0
    assert receiver.deliveries == []


async def test_callbacks_are_refused_where_the_route_takes_none_and_taken_where_allowed(
    standalone: Settings, receiver: Receiver
) -> None:
    settings = with_route(standalone, hooks_route([receiver.url("/cb")]))
    async with running_gateway(settings) as gw:
        async with gw.http.post(
            gw.url("/reports/x"), data=b"{}", headers={"Tidegate-Callback": receiver.url("/cb")}
        ) as r:
            assert r.status == 400
            assert "takes no Tidegate-Callback" in (await r.json())["detail"]
        async with gw.http.post(
            gw.url("/hooks/x"),
            data=b"{}",
            headers={"Tidegate-Callback": receiver.url("/cb//orders/%6Fne")},
        ) as r:
            assert r.status == 202
            job_id = (await r.json())["id"]
        projection = await gw.gw.ledger.projection(job_id)
        assert projection["callback"] == receiver.url("/cb/orders/one")
        (accepted,) = await gw.gw.ledger.events(job_id)
        assert accepted["callback"] == receiver.url("/cb/orders/one")


async def test_a_callback_header_that_is_not_utf8_is_a_400(
    standalone: Settings, receiver: Receiver
) -> None:
    settings = with_route(standalone, hooks_route([receiver.url("/cb")]))
    async with running_gateway(settings) as gw:
        host, port = gw.public.host, gw.public.port
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /hooks/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Tidegate-Callback: http://127.0.0.1/cb/\xff\xfe\r\n\r\n{}"
        )
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        assert b" 400 " in status_line
        requests = parts_of(settings.route("hooks"))[0].requests
        assert await gw.gw.ledger._redis.xlen(requests) == 0


def _config(tmp_path: Path, settings: Settings, route: RouteSettings) -> Path:
    raw = {
        "redis": {"url": settings.redis.url, "mode": settings.redis.mode},
        "routes": [
            {
                "name": route.name,
                "match": {"path_prefix": "/hooks", "methods": ["POST"]},
                "mode": "async",
                "callback": {
                    "allow": list(route.callback.allow) if route.callback else [],
                    "secret": SECRET,
                    "timeout_s": 5,
                },
            }
        ],
    }
    path = tmp_path / "tidegate.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def test_a_worker_killed_mid_delivery_leaves_its_callback_to_another(
    standalone: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    """A real worker process claims the callback, the receiver hangs, the
    process is killed (SIGKILL: nothing recorded); once its lease has passed
    another deliverer sends the same message, which the receiver takes."""
    route = hooks_route([receiver.url()], timeout_s=5)
    settings = with_route(standalone, route)
    config = _config(tmp_path, settings, route)
    receiver.hold = True
    workers = Workers(config, "hooks", "--app", f"{__name__}:handler")
    proc = await workers.start_one()
    try:
        async with sender_of(settings) as (sender, ledger):
            job_id = await admit(ledger, receiver.url())
            await asyncio.wait_for(receiver.arrived.wait(), 30)  # the worker ran it and calls
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            receiver.hold = False
            assert await callback_events(ledger, job_id) == []
            await deliver_all(sender)  # still leased to the dead worker: nothing
            assert receiver.delivered() == []
            lease_s = 5 + LEASE_MARGIN_S
            await deliver_all(sender, time.time() + lease_s + 1)
            (event,) = await callback_events(ledger, job_id)
            assert event["attempts"] == "2"  # the killed worker's attempt counts
            assert [d.message_id for d in receiver.delivered()] == [f"{job_id}.succeeded"]
    finally:
        await workers.close()


async def test_a_partitioned_routes_callbacks_are_delivered_from_every_partition(
    settings: Settings, receiver: Receiver
) -> None:
    route = hooks_route([receiver.url()])
    route = dataclasses.replace(route, partitions=3)
    settings = with_route(settings, route)
    async with sender_of(settings) as (sender, ledger):
        jobs = [await cancelled_job(ledger, receiver.url()) for _ in range(9)]
        assert len({job.partition(".")[0] for job in jobs}) == 3  # one tag per partition
        await deliver_all(sender)
        assert await ledger.due_callbacks("hooks") == 0
    assert sorted(d.message_id for d in receiver.delivered()) == sorted(
        f"{job}.cancelled" for job in jobs
    )
