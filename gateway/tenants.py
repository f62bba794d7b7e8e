"""API keys, tenants and priority classes at the gateway.

With ``tenants`` configured, every public request names its tenant with an
API key (``Authorization: Bearer KEY`` or ``X-Api-Key: KEY``); the gateway
keeps only the keys' SHA-256 digests, so the config holds no secret. A
request without a known key is 401. A job records its tenant; through the
job API a tenant sees only its own jobs (another tenant's job is the same
404 as an unknown one).

The key authenticated the client to the gateway, and there it stops: the
header that carried it (``X-Api-Key`` always, ``Authorization`` when it held
the tenant's key) is stripped before the job is stored or anything forwarded.
Bytes that are not UTF-8 in a key make an unknown key (401), never an error.

Priority class while a route is throttled: the lower of the route's and the
tenant's class; a request may ask for a lower one still with
``Tidegate-Priority: high|normal|low``, never for a higher one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from aiohttp import web

from gateway import problems
from gateway.rejections import Rejection
from tidegate.errors import JobNotFound
from tidegate.settings import PRIORITIES, RouteSettings, TenantSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Identity(NamedTuple):
    """Who a request is, and the headers (lower-case) that said so."""

    tenant: TenantSettings
    credentials: frozenset[str]


_API_KEY_ONLY = frozenset({"x-api-key"})
_BEARER = frozenset({"x-api-key", "authorization"})


def _digest(key: str) -> str:
    # surrogateescape: a key with bytes that are not UTF-8 hashes to an
    # unknown digest instead of failing the request.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class Tenants:
    def __init__(self, tenants: Sequence[TenantSettings]) -> None:
        self.by_digest = {t.api_key_sha256: t for t in tenants}

    @property
    def enabled(self) -> bool:
        return bool(self.by_digest)

    def identify(self, request: web.Request) -> Identity | None:
        """The request's tenant, or None (no key, or an unknown one)."""
        key = request.headers.get("X-Api-Key")
        credentials = _API_KEY_ONLY
        if key is None:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            key = value.strip() if scheme.lower() == "bearer" else None
            credentials = _BEARER
        if not key:
            return None
        tenant = self.by_digest.get(_digest(key))
        return Identity(tenant, credentials) if tenant is not None else None

    def require(self, request: web.Request, route: str = "") -> Identity:
        """The request's identity; Rejection (401) without a known key."""
        identity = self.identify(request)
        if identity is None:
            raise Rejection(
                "api-key-required",
                "API key required",
                "Send a valid API key as 'Authorization: Bearer KEY' or 'X-Api-Key: KEY'.",
                headers={"WWW-Authenticate": 'Bearer realm="tidegate"'},
                route=route,
            )
        return identity


def priority_of(request: web.Request, route: RouteSettings, tenant: TenantSettings | None) -> str:
    """The request's class; Rejection (400) for an unknown one."""
    base = PRIORITIES.index(route.priority)
    if tenant is not None:
        base = max(base, PRIORITIES.index(tenant.priority))
    asked = request.headers.get("Tidegate-Priority")
    if asked is None:
        return PRIORITIES[base]
    if asked not in PRIORITIES:
        raise Rejection(
            "bad-priority",
            "Unknown priority class",
            f"Tidegate-Priority is one of {', '.join(PRIORITIES)}.",
            route=route.name,
        )
    return PRIORITIES[max(base, PRIORITIES.index(asked))]


def owned(
    tenants: Tenants, tenant_of_job: Callable[[web.Request, str], Awaitable[str]]
) -> Callable[[Handler], Handler]:
    """Wrap a job API handler: with tenants, only the job's own tenant gets through."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not tenants.enabled:
                return await handler(request)
            tenant = tenants.require(request).tenant
            job_id = request.match_info["job_id"]
            try:
                owner = await tenant_of_job(request, job_id)
            except JobNotFound:
                owner = ""
            if owner != tenant.name:
                return problems.job_not_found(job_id)
            return await handler(request)

        return guarded

    return wrap
