"""Where a completion callback may connect: screened on the addresses used.

The allow lists say which URLs a client may name; they cannot say where a
name resolves at delivery time. So the connector's resolver drops every
address ``tidegate.callback_urls.forbidden`` names (link-local, cloud
metadata, multicast, and the IPv4 addresses hidden in IPv6 forms), and a
name that resolves to nothing else fails as ``ScreenedOut``: the check is on
the very addresses connected to, so a DNS answer that changes between
admission and delivery (rebinding) is caught too. An IP literal needs no
resolving and is checked at once (``literal_screened``).
"""

from __future__ import annotations

import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from tidegate.callback_urls import forbidden


class ScreenedOut(OSError):
    """Every address the host resolves to is one no callback may reach."""


class ScreeningResolver(AbstractResolver):
    """Resolves with another resolver and drops the addresses ``forbidden``
    names: the check is on the very addresses the connector connects to."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if forbidden(r["host"]) is None]
        if not kept:
            reasons = "; ".join(sorted({forbidden(r["host"]) or "" for r in found}))
            raise ScreenedOut(
                f"{host} resolves only to addresses callbacks may not reach: {reasons}"
            )
        return kept

    async def close(self) -> None:
        await self._inner.close()


def literal_screened(host: str) -> str | None:
    """Why an IP-literal host may not be called (names are screened when resolved)."""
    try:
        return forbidden(host)
    except ValueError:
        return None
