"""Entry point of ``tidegate scaler``: wiring only.

Builds what the controller (``scaler.controller``) needs from the settings:
Kubernetes access when a target or resource needs it, the leader elector, the
Redis connection, the admin port (metrics, readiness); runs it until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import socket

from scaler.controller import Controller
from scaler.kube import Kube, load_api_client, own_namespace
from scaler.lease import LeaderElector, LeaseSettings
from scaler.metrics import ScalerMetrics
from scaler.shards import ShardedElection
from tidegate.admin_server import serve_admin
from tidegate.ledger.store import Store
from tidegate.process import run_until_signalled, settle_heap
from tidegate.settings import Settings, parse_listen


def needs_kube(settings: Settings) -> bool:
    deployment = any(r.scaler and r.scaler.target.kind == "deployment" for r in settings.routes)
    return deployment or bool(settings.scaler.namespaces)


def identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


async def serve(
    settings: Settings,
    config_path: str,
    stop: asyncio.Event,
    *,
    kubeconfig: str | None = None,
    metrics: ScalerMetrics | None = None,
) -> Controller:
    metrics = metrics or ScalerMetrics()
    kube = None
    if needs_kube(settings):
        kube = Kube(load_api_client(kubeconfig), settings.scaler.api_timeout_s)
    c = settings.scaler
    store = Store.open(settings.redis)
    elector: LeaderElector | ShardedElection | None = None
    if kube is not None and c.leader_election:
        lease = LeaseSettings(
            namespace=c.lease_namespace or own_namespace(),
            name=c.lease_name,
            identity=identity(),
            duration_s=c.lease_duration_s,
            renew_deadline_s=c.renew_deadline_s,
            retry_period_s=c.retry_period_s,
        )
        if c.shards > 1:
            elector = ShardedElection(kube, lease, c.shards, store)
        else:
            elector = LeaderElector(
                kube, lease, on_change=lambda leading: metrics.leader.set(int(leading))
            )
    elif kube is None:
        metrics.leader.set(1)
    controller = Controller(settings, config_path, store, kube, metrics, elector)

    def ready() -> str | None:
        return None if controller.synced else "routes not loaded yet"

    async def settle() -> None:
        await controller.first_sync.wait()
        settle_heap()  # every route's loop is built

    runner = await serve_admin(metrics.registry, *parse_listen(c.admin_listen), ready=ready)
    settling = asyncio.create_task(settle())
    try:
        await controller.run(stop)
    finally:
        settling.cancel()
        await runner.cleanup()
        await store.aclose()
        if kube is not None:
            kube.close()
    return controller


def run(settings: Settings, config_path: str, *, kubeconfig: str | None = None) -> None:
    run_until_signalled(lambda stop: serve(settings, config_path, stop, kubeconfig=kubeconfig))
