"""Shutdown in the order Kubernetes needs it: stop being chosen, then stop.

A pod that gets SIGTERM is removed from its Service's endpoints at about the
same time, but not at once: kube-proxy, an ingress controller or a cloud load
balancer each learn of it a little later and keep sending requests until
they do. A gateway that closed its listeners on SIGTERM would refuse those
requests (and cut the keep-alive connections a load balancer holds to it).
So the gateway drains in three steps:

1. **Not ready, still serving** (``gateway.drain_delay_s``, default 5 s):
   ``/readyz`` answers 503 at once; both ports keep accepting and answering
   as before, sync waits included, and every answer carries
   ``Connection: close`` so that a load balancer's keep-alive connections end
   one by one after their last answer instead of being cut.
2. **No new connections, the rest finishes** (``gateway.shutdown_grace_s``):
   the public listener closes, idle keep-alive connections are closed, and
   the requests in flight finish: a sync request gets the service's answer if
   it comes within its wait. What is still waiting when the grace runs out
   answers 202 with its job's state (the job stays queued and runs); only
   then is anything cut.
3. The admin port, which kept answering (``/readyz`` 503) all along, closes
   last, and the process exits 0.

The pod's ``terminationGracePeriodSeconds`` must cover both steps and a
margin (``termination_grace_s``; the chart derives it from the settings).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from gateway.context import GATEWAY
from tidegate.settings import GatewaySettings

log = logging.getLogger(__name__)

RELEASE_MARGIN_S = 1.0
"""Between releasing the sync waits still running (each answers 202) and
cancelling whatever handler is left: time for those answers to be written."""

TERMINATION_MARGIN_S = 5
"""What ``termination_grace_s`` adds to the drain for the process's own start
of shutdown and exit (pools closed, loop ended)."""


def termination_grace_s(settings: GatewaySettings) -> int:
    """The ``terminationGracePeriodSeconds`` a gateway pod needs: the drain
    delay, the grace for requests in flight, the release margin and a margin
    to exit, rounded up."""
    total = settings.drain_delay_s + settings.shutdown_grace_s + RELEASE_MARGIN_S
    return int(-(-total // 1)) + TERMINATION_MARGIN_S


async def close_while_draining(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: while draining, an answer ends its connection,
    so a client (or load balancer) opens its next one elsewhere."""
    if request.app[GATEWAY].draining:
        response.force_close()  # the server closes the connection after this answer
        # aiohttp prepares the headers before this hook: say it in them too.
        response.headers["Connection"] = "close"


def mark_closing(app: web.Application) -> None:
    """Make every answer of ``app`` carry ``Connection: close`` once the
    gateway drains. For the admin app: the public one's answers get it from
    ``app.problem_boundary`` instead (a signal costs every answer a call)."""
    app.on_response_prepare.append(close_while_draining)


async def drain(public: web.AppRunner, admin: web.AppRunner, settings: GatewaySettings) -> None:
    """Steps 1 to 3 above, once ``stop`` has been set (the caller waits for it)."""
    gw = public.app[GATEWAY]
    gw.draining = True
    log.info(
        "shutting down: not ready; serving on for %g s while load balancers take "
        "this gateway out, then finishing requests in flight (up to %g s)",
        settings.drain_delay_s,
        settings.shutdown_grace_s,
    )
    await asyncio.sleep(settings.drain_delay_s)
    log.info("shutting down: no new connections; %d request(s) in flight", gw.in_flight)
    loop = asyncio.get_running_loop()
    release = loop.call_later(settings.shutdown_grace_s, gw.waiter.release_all)
    try:
        # Closes the listener, then the idle connections, then waits for the
        # handlers (the runner's shutdown_timeout), then cancels what is left.
        await public.cleanup()
    finally:
        release.cancel()
        await admin.cleanup()
    log.info("shut down")
