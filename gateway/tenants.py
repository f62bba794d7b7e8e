"""API keys, tenants and priority classes at the gateway.

With ``tenants`` configured, every public request names its tenant with an
API key (``Authorization: Bearer KEY`` or ``X-Api-Key: KEY``); the gateway
keeps only the keys' SHA-256 digests, so the config holds no secret. A
request without a known key is 401. A job records its tenant; through the
job API a tenant sees only its own jobs (another tenant's job is the same
404 as an unknown one).

The key authenticated the client to the gateway, and there it stops: every
header that carries a tenant's key (``X-Api-Key`` always, in any spelling;
``Authorization`` when its bearer token is a tenant's key) is stripped
before the job is stored or anything forwarded, whichever one
authenticated. Keys of two tenants in one request are refused (400).
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
from gateway.rejections import Kind, Rejection
from tidegate.errors import JobNotFound
from tidegate.settings import PRIORITIES, RouteSettings, TenantSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Identity(NamedTuple):
    """Who a request is, and the headers (lower-case) that said so."""

    tenant: TenantSettings
    credentials: frozenset[str]


def _digest(key: str) -> str:
    # surrogateescape: a key with bytes that are not UTF-8 hashes to an
    # unknown digest instead of failing the request.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def _presented(request: web.Request) -> list[tuple[str, str]]:
    """Every (header, key) the tenant scheme reads: each ``X-Api-Key`` (in
    any spelling of its name) and each ``Authorization: Bearer`` value."""
    found = []
    for name, value in request.headers.items():
        lower = name.lower().replace("_", "-")
        if lower == "x-api-key":
            found.append((name.lower(), value.strip()))
        elif lower == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer":
                found.append((name.lower(), token.strip()))
    return found


class Tenants:
    def __init__(self, tenants: Sequence[TenantSettings]) -> None:
        self.by_digest = {t.api_key_sha256: t for t in tenants}

    @property
    def enabled(self) -> bool:
        return bool(self.by_digest)

    def identify(self, request: web.Request) -> Identity | None:
        """The request's tenant, or None (no key, or only unknown ones).

        Every header the scheme reads is looked at, not only the first: a key
        in a second header would otherwise travel on to the service (and into
        the request stream) as if it were the service's own. ``X-Api-Key``
        is the gateway's in every spelling and never forwarded; a bearer
        token is a credential when it is a tenant's key (a token for the
        service is forwarded). Keys of two different tenants in one request
        are a 400: which one to believe cannot be decided."""
        tenants: dict[str, TenantSettings] = {}
        credentials = set()
        for header, key in _presented(request):
            tenant = self.by_digest.get(_digest(key)) if key else None
            if tenant is not None:
                tenants[tenant.name] = tenant
                credentials.add(header)
            elif header.replace("_", "-") == "x-api-key":
                credentials.add(header)
        if len(tenants) > 1:
            raise Rejection(
                Kind.CONFLICTING_KEYS,
                "API keys of more than one tenant",
                "The request carries the API keys of more than one tenant (in "
                f"{', '.join(sorted(credentials))}); send one key.",
            )
        if not tenants:
            return None
        (tenant,) = tenants.values()
        return Identity(tenant, frozenset(credentials))

    def require(self, request: web.Request, route: str = "") -> Identity:
        """The request's identity; Rejection (401) without a known key."""
        identity = self.identify(request)
        if identity is None:
            raise Rejection(
                Kind.API_KEY_REQUIRED,
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
            Kind.BAD_PRIORITY,
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
