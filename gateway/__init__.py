"""The gateway: the aiohttp edge in front of HTTP services.

A request that matches a route is admitted into the route's Redis stream as
an event-sourced job (``admission``), then either answered at once with 202
or held until the worker's result arrives (``waiter``) and answered as if
proxied. ``proxy`` routes forward straight through (``proxy``). The job API
(``jobs_api``) lets clients redeem their job id; the admin port (``admin``)
serves metrics, probes and per-route status. ``app`` wires it together and owns
the process lifecycle.
"""
