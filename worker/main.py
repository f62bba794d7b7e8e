"""Entry point of ``tidegate worker``: one route, one executor, until SIGTERM.

The drain grace (``--grace-s``, default 25 s) is how long jobs in flight may
take after SIGTERM; keep it below the pod's ``terminationGracePeriodSeconds``
(default 30 s) so the process exits on its own before the kubelet kills it.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from tidegate.errors import ConfigError
from tidegate.http import upstream_parts
from tidegate.keys import RouteKeys
from tidegate.ledger.store import Store
from tidegate.process import run_until_signalled, settle_heap
from tidegate.settings import Settings, parse_listen
from worker.batch import BatchHandler
from worker.callback_delivery import CallbackSender
from worker.compensator import Compensator
from worker.consumer import BLOCK_MS, Consumer, Executor
from worker.handler import Handler, load_handler
from worker.metrics import WorkerMetrics, serve_metrics
from worker.relay import Relay

log = logging.getLogger(__name__)


def build_executor(
    settings: Settings,
    route_name: str,
    upstream: str | None,
    app: str | None,
    compensate: str | None = None,
    batch_size: int | None = None,
    batch_wait_ms: float = 50.0,
) -> Executor:
    route = settings.route(route_name)
    if batch_size is not None and not app:
        raise ConfigError(["--batch-size goes with --app: a relay calls its service per job"])
    if batch_size is not None and batch_size < 1:
        raise ConfigError([f"--batch-size {batch_size}: must be at least 1"])
    if batch_wait_ms < 0:
        raise ConfigError([f"--batch-wait-ms {batch_wait_ms:g}: must not be negative"])
    if app:
        undo = load_handler(compensate) if compensate else None
        if batch_size is not None:
            return BatchHandler(load_handler(app), batch_size, batch_wait_ms / 1000, undo)
        return Handler(load_handler(app), undo)
    if compensate:
        raise ConfigError(["--compensate goes with --app; a relay uses worker.compensate_path"])
    assert upstream, "either upstream or app"
    try:
        upstream_parts(upstream)
    except ValueError as e:
        raise ConfigError(
            [f"--upstream: {e} (the value is not shown: it may hold a secret)"]
        ) from None
    return Relay(
        upstream,
        route.worker.timeout_s,
        route.worker.compensate_path,
        prefix=route.match.path_prefix,
        max_result_bytes=route.worker.max_result_bytes,
    )


async def consume(
    settings: Settings,
    route_name: str,
    executor: Executor,
    stop: asyncio.Event,
    *,
    concurrency: int | None = None,
    grace_s: float = 25.0,
    metrics_listen: str | None = None,
) -> Consumer:
    route = settings.route(route_name)
    if isinstance(executor, BatchHandler):
        wanted = concurrency or route.worker.concurrency
        if wanted < 2 * executor.size:  # one batch running while the next one forms
            log.info("concurrency raised from %d to twice the batch size", wanted)
            concurrency = 2 * executor.size
    store = Store.open(settings.redis, blocking_reads_s=BLOCK_MS / 1000)
    metrics = WorkerMetrics()
    runner = await serve_metrics(metrics, *parse_listen(metrics_listen)) if metrics_listen else None
    ledger = store.jobs(settings.routes, batched=True)
    ledger.open()
    try:
        consumer = Consumer(
            route,
            ledger,
            executor,
            concurrency=concurrency,
            metrics=metrics,
        )
        compensator = Compensator(route, ledger, executor, consumer.name, metrics)
        log.info(
            "worker %s consuming route %s (concurrency %d)",
            consumer.name,
            route.name,
            consumer.concurrency,
        )
        parts = [consumer.run(stop, grace_s=grace_s), compensator.run(stop)]
        if route.callback is not None:
            parts.append(CallbackSender(route, ledger, metrics).run(stop))
        settle_heap()
        await asyncio.gather(*parts)
        return consumer
    finally:
        await ledger.close()
        if runner is not None:
            await runner.cleanup()
        await store.aclose()


def run(
    settings: Settings,
    route_name: str,
    *,
    upstream: str | None,
    app: str | None,
    compensate: str | None,
    concurrency: int | None,
    grace_s: float,
    metrics_listen: str | None = None,
    batch_size: int | None = None,
    batch_wait_ms: float = 50.0,
) -> None:
    executor = build_executor(
        settings, route_name, upstream, app, compensate, batch_size, batch_wait_ms
    )
    callback = settings.route(route_name).callback
    if callback is not None:
        callback.key  # noqa: B018 - the secret file is read now: a bad one stops the start

    run_until_signalled(
        lambda stop: consume(
            settings,
            route_name,
            executor,
            stop,
            concurrency=concurrency,
            grace_s=grace_s,
            metrics_listen=metrics_listen,
        ),
        traced="worker",
    )


async def check_alive(settings: Settings, route_name: str, host: str | None = None) -> int:
    """``tidegate worker --check``: 0 when a worker of this host serves the route.

    For a Kubernetes liveness probe in the worker's container: the host name
    is the pod's name, and every worker process refreshes its record every
    few seconds. Redis being unreachable also fails the check; give the probe
    a failureThreshold that rides out a Redis restart.
    """
    route = settings.route(route_name)
    prefix = f"{host or socket.gethostname()}-"
    store = Store.open(settings.redis)
    try:
        found = await store.liveness.first_alive(route.name, prefix)
    finally:
        await store.aclose()
    if found is not None:
        print(f"alive: {found}")
        return 0
    where = RouteKeys(route.name).workers
    print(f"no live worker of route {route.name} on this host (looked for {prefix}* in {where})")
    return 1
