"""The gateway's shared state, owned by the application and typed by an AppKey.

Everything here is created in ``open_context`` and closed in reverse order by
``close``; ``app`` runs these from aiohttp's ``cleanup_ctx`` so that cleanup
only runs for what started.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from gateway.http_headers import Forwarding
from gateway.metrics import GatewayMetrics
from gateway.rejections import Kind, Rejection, for_error
from gateway.routing import Router
from gateway.status_history import StatusHistory
from gateway.tenants import Tenants
from gateway.throttle_watch import ThrottleWatcher
from gateway.waiter import ResultWaiter
from tidegate.errors import RedisCommandError, RedisUnavailable, TidegateError
from tidegate.ledger import Ledger
from tidegate.ledger.store import Store
from tidegate.redact import redact_url
from tidegate.settings import RouteSettings, Settings, TenantSettings
from tidegate.tasks import stop_tasks
from tidegate.upstream import Upstream

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
"""Longest wait for a connection to a proxy route's upstream."""


@dataclass
class Gateway:
    settings: Settings
    store: Store
    ledger: Ledger
    waiter: ResultWaiter
    metrics: GatewayMetrics
    router: Router
    http: aiohttp.ClientSession
    """For proxy requests whose bodies stream (chunked, or over WHOLE_BODY_BYTES)."""
    upstreams: dict[str, Upstream]
    """Each proxy route's connection pool, for requests with small bodies."""
    tenants: Tenants
    throttles: ThrottleWatcher
    forwarding: Forwarding
    history: StatusHistory
    """The last 15 minutes of every queued route, for the status page."""
    draining: bool = False
    in_flight: int = 0
    """Requests being handled (a plain count; the gauge reads it on scrape)."""
    stopping: bool = False
    redis_ok: bool = False
    writes_refused: bool = False
    """Redis refused an admission for want of memory; cleared by a write that succeeds."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def rejection(
        self,
        error: TidegateError,
        route: RouteSettings | None = None,
        job_id: str | None = None,
        tenant: TenantSettings | None = None,
    ) -> Rejection:
        """The answer to an error from below (``rejections.for_error``) for this gateway.

        An error reply of Redis is a fault of the server or its setup, which
        the client cannot fix and the operator must see: logged at ERROR."""
        if isinstance(error, RedisCommandError):
            log.error(
                "Redis answered an error%s: %s", f" on route {route.name}" if route else "", error
            )
        throttle = route.scaler.throttle.status if route and route.scaler else 429
        return for_error(
            error,
            route=route.name if route else "",
            job_id=job_id,
            retry_after_s=self.settings.gateway.redis_retry_after_s,
            throttle_status=throttle,
            tenant=tenant.name if tenant else "",
        )

    def note(self, rejection: Rejection) -> None:
        """What a rejection tells the gateway: a throttled request is counted by
        cause and tenant; out of memory is remembered for /readyz until a write
        succeeds again."""
        if rejection.reason == "throttled":
            cause = rejection.extra.get("cause", "")
            self.metrics.throttled.labels(rejection.route, cause, rejection.tenant).inc()
        elif rejection.kind is Kind.REDIS_FULL:
            self.writes_refused = True

    async def close(self) -> None:
        self.stopping = True
        await stop_tasks(self._tasks)
        await self.throttles.close()
        await self.waiter.close()
        await self.ledger.close()
        await self.http.close()
        for upstream in self.upstreams.values():
            await upstream.close()
        await self.store.aclose()

    def watch_health(self) -> None:
        """Start keeping ``redis_ok`` and ``writes_refused`` current."""
        self._tasks.append(asyncio.create_task(self._health(), name="redis-health"))

    async def _health(self, interval_s: float = 1.0) -> None:
        """Keep ``redis_ok`` and ``writes_refused`` current for /readyz without a
        probe hitting Redis.

        While Redis refuses writes (out of memory) a ping still answers, so
        once an admission was refused for memory this loop probes with a small
        write (a key that expires) until one succeeds.
        """
        known: bool | None = None  # unknown until the first check: it is logged either way
        while not self.stopping:
            try:
                await self.store.ping(load_scripts=not self.redis_ok)
                if known is not True:
                    log.info("Redis reachable at %s", redact_url(self.settings.redis.url))
                self.redis_ok = known = True
                if self.writes_refused:
                    await self._probe_write()
            except RedisUnavailable as e:
                if known is not False:  # once per change of state, not per check
                    log.warning(
                        "Redis unreachable at %s: %s. Admissions answer 503 with "
                        "Retry-After %d s and /readyz 503 until it answers; checking "
                        "every %g s",
                        redact_url(self.settings.redis.url),
                        e,
                        self.settings.gateway.redis_retry_after_s,
                        interval_s,
                    )
                self.redis_ok = known = False
            await asyncio.sleep(interval_s)

    def keep_history(self) -> None:
        """Start sampling every queued route into ``history``."""
        self._tasks.append(asyncio.create_task(self._sample(), name="status-history"))

    async def _sample(self) -> None:
        """One ``routes_status`` read per interval; a failed one leaves a gap.
        While the health loop knows Redis is down no read is tried: it has
        logged that once, and a failing read every interval would log again."""
        interval_s = self.history.interval_s
        loop = asyncio.get_running_loop()
        next_s = loop.time()
        while not self.stopping:
            if self.redis_ok:
                try:
                    statuses = await self.store.routes_status(self.settings)
                except (RedisUnavailable, RedisCommandError) as e:
                    log.debug("status history: no sample this time: %s", e)
                else:
                    self.history.record(time.time(), statuses)
            next_s = max(next_s + interval_s, loop.time())
            await asyncio.sleep(next_s - loop.time())

    async def _probe_write(self) -> None:
        try:
            await self.store.probe_write()
        except RedisUnavailable as e:
            log.warning("Redis still refuses writes: %s", e)
            return
        log.info("Redis takes writes again")
        self.writes_refused = False


GATEWAY = web.AppKey("gateway", Gateway)


async def open_context(settings: Settings, metrics: GatewayMetrics | None = None) -> Gateway:
    store = Store.open(settings.redis)
    # batched: concurrent script calls other than admissions (quotas on proxy
    # routes, cancellations) share round trips too.
    ledger = store.jobs(
        settings.routes,
        batched=True,
        admission_batch_max=settings.gateway.batch_max_size,
    )
    queued = [r for r in settings.routes if r.mode != "proxy"]
    metrics = metrics or GatewayMetrics()
    gw = Gateway(
        settings=settings,
        store=store,
        ledger=ledger,
        waiter=ResultWaiter(ledger, queued),
        metrics=metrics,
        router=Router(settings.routes),
        http=aiohttp.ClientSession(auto_decompress=False),
        upstreams={
            r.name: Upstream(r.upstream, connect_timeout_s=CONNECT_TIMEOUT_S)
            for r in settings.routes
            if r.upstream
        },
        tenants=Tenants(settings.tenants),
        throttles=ThrottleWatcher(store, queued, metrics),
        forwarding=Forwarding(settings.gateway.trusted_proxies),
        history=StatusHistory(settings.gateway.status_history_interval_s),
    )
    gw.metrics.in_flight.set_function(lambda: gw.in_flight)
    ledger.open()
    if queued:
        gw.waiter.start()
        gw.throttles.start()
        gw.keep_history()
    else:
        gw.waiter.subscribed.set()
    gw.watch_health()
    return gw
