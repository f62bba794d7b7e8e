"""API keys, tenants and priority classes at the gateway.

With ``tenants`` configured, every public request names its tenant with an
API key (``Authorization: Bearer KEY`` or ``X-Api-Key: KEY``); the gateway
keeps only the keys' SHA-256 digests, so the config holds no secret. A
request without a known key is 401. A job records its tenant; through the
job API a tenant sees only its own jobs (another tenant's job is the same
404 as an unknown one).

Priority class while a route is throttled: the lower of the route's and the
tenant's class; a request may ask for a lower one still with
``Tidegate-Priority: high|normal|low``, never for a higher one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from gateway import problems
from tidegate.errors import JobNotFound
from tidegate.settings import PRIORITIES, RouteSettings, TenantSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Tenants:
    def __init__(self, tenants: Sequence[TenantSettings]) -> None:
        self.by_digest = {t.api_key_sha256: t for t in tenants}

    @property
    def enabled(self) -> bool:
        return bool(self.by_digest)

    def identify(self, request: web.Request) -> TenantSettings | None:
        """The request's tenant, or None (no key, or an unknown one)."""
        key = request.headers.get("X-Api-Key")
        if key is None:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            key = value.strip() if scheme.lower() == "bearer" else None
        if not key:
            return None
        return self.by_digest.get(hashlib.sha256(key.encode("utf-8")).hexdigest())


def unauthorized() -> web.Response:
    return problems.problem(
        401,
        "api-key-required",
        "API key required",
        "Send a valid API key as 'Authorization: Bearer KEY' or 'X-Api-Key: KEY'.",
        headers={"WWW-Authenticate": 'Bearer realm="tidegate"'},
    )


def priority_of(
    request: web.Request, route: RouteSettings, tenant: TenantSettings | None
) -> str | web.Response:
    """The request's class, or a 400 answer for an unknown one."""
    base = PRIORITIES.index(route.priority)
    if tenant is not None:
        base = max(base, PRIORITIES.index(tenant.priority))
    asked = request.headers.get("Tidegate-Priority")
    if asked is None:
        return PRIORITIES[base]
    if asked not in PRIORITIES:
        return problems.problem(
            400,
            "bad-priority",
            "Unknown priority class",
            f"Tidegate-Priority is one of {', '.join(PRIORITIES)}.",
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
            tenant = tenants.identify(request)
            if tenant is None:
                return unauthorized()
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
