"""The gateway's shared state, owned by the application and typed by an AppKey.

Everything here is created in ``open_context`` and closed in reverse order by
``close``; ``app`` runs these from aiohttp's ``cleanup_ctx`` so that cleanup
only runs for what started.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from gateway.admission import AdmissionBatcher
from gateway.metrics import GatewayMetrics
from gateway.routing import Router
from gateway.tenants import Tenants
from gateway.throttle_watch import ThrottleWatcher
from gateway.waiter import ResultWaiter
from tidegate import scripts
from tidegate.ledger import Ledger
from tidegate.redis_client import UNAVAILABLE, connect
from tidegate.settings import Settings
from tidegate.tasks import stop_tasks

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    settings: Settings
    redis: Redis
    ledger: Ledger
    batcher: AdmissionBatcher
    waiter: ResultWaiter
    metrics: GatewayMetrics
    router: Router
    http: aiohttp.ClientSession
    tenants: Tenants
    throttles: ThrottleWatcher
    draining: bool = False
    in_flight: int = 0
    """Requests being handled (a plain count; the gauge reads it on scrape)."""
    stopping: bool = False
    redis_ok: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        self.stopping = True
        await stop_tasks(self._tasks)
        await self.throttles.close()
        await self.waiter.close()
        await self.batcher.close()
        await self.http.close()
        await self.redis.aclose()

    async def _health(self, interval_s: float = 1.0) -> None:
        """Keep ``redis_ok`` current for /readyz without a probe hitting Redis."""
        while not self.stopping:
            try:
                await self.redis.ping()
                if not self.redis_ok:
                    await scripts.load_all(self.redis)
                    log.info("Redis reachable at %s", self.settings.redis.url)
                self.redis_ok = True
            except UNAVAILABLE as e:
                if self.redis_ok:
                    log.warning("Redis unreachable: %s", e)
                self.redis_ok = False
            await asyncio.sleep(interval_s)


GATEWAY = web.AppKey("gateway", Gateway)


async def open_context(settings: Settings, metrics: GatewayMetrics | None = None) -> Gateway:
    redis = connect(settings.redis)
    ledger = Ledger(redis, settings.routes)
    queued = [r.name for r in settings.routes if r.mode != "proxy"]
    metrics = metrics or GatewayMetrics()
    gw = Gateway(
        settings=settings,
        redis=redis,
        ledger=ledger,
        batcher=AdmissionBatcher(redis, batch_max_size=settings.gateway.batch_max_size),
        waiter=ResultWaiter(redis, ledger, queued),
        metrics=metrics,
        router=Router(settings.routes),
        http=aiohttp.ClientSession(auto_decompress=False),
        tenants=Tenants(settings.tenants),
        throttles=ThrottleWatcher(redis, queued, metrics),
    )
    gw.metrics.in_flight.set_function(lambda: gw.in_flight)
    gw.batcher.start()
    if queued:
        gw.waiter.start()
        gw.throttles.start()
    else:
        gw.waiter.subscribed.set()
    gw._tasks.append(asyncio.create_task(gw._health(), name="redis-health"))
    return gw
