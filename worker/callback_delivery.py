"""Delivering completion callbacks: push, beside the pull of the job API.

A client that admitted a job with ``Tidegate-Callback: URL`` (on a route with
``callback.allow``) is told when the job ends: each terminal state
(succeeded, dead_lettered, cancelled, expired, and compensated after a dead
letter) is POSTed to the URL once delivered, as JSON::

    {"type": "job.succeeded", "timestamp": "2026-11-27T18:00:00Z",
     "data": {<the job's view, as GET /_tidegate/jobs/{id} shows it>}}

signed per Standard Webhooks (``tidegate.webhooks``) with the route's secret
(the body and headers: ``worker.callback_message``);
``webhook-id`` is ``JOB_ID.STATE``, the same on every retry. A job admitted
with a valid ``traceparent`` has its callback carry it (and its
``tracestate``), so the receiver's spans join the client's trace; with
tracing on, each attempt is a span of that trace (``worker.spans``).

Every worker process of a route with callbacks runs one ``CallbackSender``
beside its consumer. It claims due callbacks (``ledger.callbacks``: the
claim is a lease, so a worker killed mid-delivery leaves the callback to
another one), posts each in a task of its own on a session of its own, at
most ``MAX_IN_FLIGHT`` at once: a slow or dead receiver holds a delivery
task, never a job slot, and a job never waits for its callback. Slots are
shared fairly: at most ``MAX_PER_RECEIVER`` of them per receiver and
``MAX_PER_TENANT`` per tenant; a callback claimed beyond that is deferred
(due again a second or two later, not counted as an attempt), so one slow
receiver, or one tenant's many, cannot hold back another's deliveries.
The payload names the job's tenant (signed with the rest). A 2xx answer
ends the callback (``callback_delivered`` in the job's log); anything else
(another status, a timeout, a refused connection, a redirect) is retried
after a backoff (1 s doubling to ``callback.backoff_max_s``, with jitter; a
receiver's Retry-After is a floor) until ``callback.give_up_after_s`` after
the job ended, then ``callback_failed`` is recorded.

Where it connects is screened (``worker.screening``): the addresses the
host resolves to now, the ones connected to, not those it had at admission.
An IP literal that is screened out is given up at once; a name that resolves
only to screened addresses is a failed attempt (the name may change back).
Redirects are never followed, proxies from the environment never used.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter

import aiohttp
from aiohttp.abc import AbstractResolver

from tidegate import trace_context, tracing
from tidegate.backoff import backoff_s, parse_retry_after
from tidegate.callback_urls import BadCallback, Target, parse_target
from tidegate.errors import JobNotFound, TidegateError
from tidegate.keys import RouteKeys, parts_of
from tidegate.ledger import Ledger
from tidegate.ledger.calls import DueCallback
from tidegate.settings import CallbackSettings, RouteSettings
from tidegate.tasks import wait_any
from worker import callback_message, spans
from worker.metrics import WorkerMetrics
from worker.screening import ScreeningResolver, literal_screened

log = logging.getLogger(__name__)

POLL_S = 0.25
"""How often a partition's due set is looked at while nothing is due sooner."""
MAX_IN_FLIGHT = 32
"""Deliveries one worker process runs at once."""
MAX_PER_RECEIVER = 4
"""Deliveries to one receiver (scheme, host and port) under way at once in a
process: a slow or hanging receiver holds at most these slots, never all."""
MAX_PER_TENANT = 16
"""Deliveries of one tenant's callbacks under way at once in a process: one
tenant's many receivers cannot hold every slot either."""
DEFER_S = 1.0
"""A callback with no free slot for its receiver or tenant is due again after
this (and up to twice it, jittered), without counting as an attempt."""
LEASE_MARGIN_S = 5.0
"""A claim outlasts the delivery's timeout by this much before another may take it."""
BACKOFF_BASE_S = 1.0
STOP_GRACE_S = 2.0
"""Deliveries in flight at shutdown get this long; the rest are left to their lease."""
USER_AGENT = "tidegate-callbacks"


class CallbackSender:
    """Delivers a route's due callbacks (one per worker process)."""

    def __init__(
        self,
        route: RouteSettings,
        ledger: Ledger,
        metrics: WorkerMetrics | None = None,
        *,
        resolver: AbstractResolver | None = None,
        rand: random.Random | None = None,
    ) -> None:
        assert route.callback is not None, "a route with callbacks"
        self.route = route
        self.settings: CallbackSettings = route.callback
        self.key = route.callback.key
        self.ledger = ledger
        self.metrics = metrics or WorkerMetrics()
        self._resolver = resolver
        self._rand = rand or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[str]] = set()
        self._wake = asyncio.Event()
        self._receivers: Counter[str] = Counter()
        """Deliveries under way per receiver (scheme://host:port)."""
        self._tenants: Counter[str] = Counter()
        """Deliveries under way per tenant ('' for a route without tenants)."""

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=ScreeningResolver(self._resolver), limit=MAX_IN_FLIGHT
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def lease_s(self) -> float:
        return self.settings.timeout_s + LEASE_MARGIN_S

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and deliver until ``stop``; Redis trouble only delays."""
        await self.open()
        try:
            while not stop.is_set():
                wait_s = POLL_S
                for keys in parts_of(self.route):
                    try:
                        wait_s = min(wait_s, await self.pass_once(keys))
                    except TidegateError as e:
                        log.warning("callbacks of route %s: %s", self.route.name, e)
                        wait_s = 1.0
                self._wake.clear()
                await wait_any((stop, self._wake), max(0.01, wait_s))
        finally:
            await self.close()

    async def pass_once(self, keys: RouteKeys, now_s: float | None = None) -> float:
        """Claim what is due in one partition (as many as there are free
        delivery slots) and start delivering it; seconds until the next one
        is due (at most ``POLL_S``)."""
        free = MAX_IN_FLIGHT - len(self._tasks)
        if free <= 0:
            return POLL_S
        now_s = time.time() if now_s is None else now_s
        claimed = await self.ledger.claim_callbacks(
            keys, lease_s=self.lease_s, most=free, now_s=now_s
        )
        for due in claimed.due:
            task = asyncio.create_task(self.deliver(due), name=f"callback-{due.message_id}")
            self._tasks.add(task)
            task.add_done_callback(self._done)
        if len(claimed.due) == free:
            return 0.0
        if claimed.next_due_ms is None:
            return POLL_S
        return min(POLL_S, max(0.0, claimed.next_due_ms / 1000 - now_s))

    def _done(self, task: asyncio.Task[str]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a slot is free
        if not task.cancelled() and task.exception() is not None:
            log.error("callback delivery failed unexpectedly", exc_info=task.exception())

    async def wait_idle(self) -> None:
        """Until every delivery started so far has ended (for tests and shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def deliver(self, due: DueCallback) -> str:
        """One attempt: delivered, retried, failed (given up), refused or gone."""
        try:
            return await self._deliver(due)
        except TidegateError as e:  # left to its lease: delivered again later
            log.warning("callback %s: Redis unreachable while recording (%s)", due.message_id, e)
            return "unrecorded"

    async def _deliver(self, due: DueCallback) -> str:
        try:
            projection = await self.ledger.projection(due.job_id)
        except JobNotFound:
            await self.ledger.end_callback(due, delivered=False, detail="the job is gone")
            return self._count("failed")
        url = projection.get("callback", "")
        try:
            target = parse_target(url)
        except BadCallback as e:
            return await self._give_up(due, f"refused: {e}", "refused")
        screened = literal_screened(target.host)
        if screened:
            return await self._give_up(due, f"refused: {screened}", "refused")
        receiver, tenant = f"{target.scheme}://{target.netloc}", projection.get("tenant", "")
        if self._receivers[receiver] >= MAX_PER_RECEIVER or (
            tenant and self._tenants[tenant] >= MAX_PER_TENANT
        ):
            later_s = time.time() + DEFER_S * (1 + self._rand.random())
            await self.ledger.defer_callback(due, later_s)
            return self._count("deferred")
        self._receivers[receiver] += 1
        self._tenants[tenant] += 1
        try:
            return await self._post(due, projection, target)
        finally:
            self._receivers[receiver] -= 1
            self._tenants[tenant] -= 1

    async def _post(self, due: DueCallback, projection: dict[str, str], target: Target) -> str:
        """One attempt at a receiver this process has a slot for."""
        now_s = time.time()
        body = callback_message.payload(due, projection, now_s)
        trace = trace_context.from_stored(projection.get("trace", ""))
        span = None
        if (active := tracing.ACTIVE) is not None:
            span = spans.callback(active, self.route.name, due, target.url, trace)
            trace = active.context_of(span)
        headers = callback_message.headers(self.key, due, now_s, body, trace)
        retry_after_s: float | None = None
        assert self._session is not None, "open() first"
        try:
            async with self._session.post(
                target.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                await response.content.read(4096)  # a little, so the connection can be reused
                if span is not None:
                    spans.called_back(span, status)
                if 200 <= status < 300:
                    await self.ledger.end_callback(due, delivered=True, detail=str(status))
                    log.info("callback %s delivered (%d)", due.message_id, status)
                    return self._count("delivered")
                error = f"the receiver answered {status}"
                retry_after_s = parse_retry_after(response.headers.get("Retry-After"), now_s)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            # ScreenedOut too: aiohttp wraps a resolver's error (ClientConnectorDNSError)
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if span is not None:
                spans.called_back(span, None, type(e).__name__)
        return await self._failed(due, error, now_s, retry_after_s)

    async def _failed(
        self, due: DueCallback, error: str, now_s: float, retry_after_s: float | None
    ) -> str:
        give_up_at_s = due.first_due_ms / 1000 + self.settings.give_up_after_s
        delay_s = backoff_s(
            due.attempt, BACKOFF_BASE_S, self.settings.backoff_max_s, retry_after_s, self._rand
        )
        if now_s + delay_s > give_up_at_s:
            return await self._give_up(due, error, "failed")
        await self.ledger.retry_callback(due, now_s + delay_s)
        log.warning(
            "callback %s attempt %d failed (%s); again in %.1f s",
            due.message_id,
            due.attempt,
            error,
            delay_s,
        )
        return self._count("retried")

    async def _give_up(self, due: DueCallback, error: str, outcome: str) -> str:
        await self.ledger.end_callback(due, delivered=False, detail=error)
        log.warning(
            "callback %s given up after %d attempt(s): %s", due.message_id, due.attempt, error
        )
        return self._count(outcome)

    def _count(self, outcome: str) -> str:
        self.metrics.callbacks.labels(self.route.name, outcome).inc()
        return outcome
