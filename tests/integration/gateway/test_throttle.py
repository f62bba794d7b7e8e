"""The front-door throttle and quotas, against a real redis-server.

Token buckets refill on Redis server time; these tests set rates so low
(0.001/s) that nothing refills while they run, so every count is exact and
no assertion depends on timing.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import make_settings, running_gateway, wait_until
from tidegate.envelope import Job
from tidegate.errors import Refused
from tidegate.keys import RouteKeys, new_job_id
from tidegate.ledger import Ledger, throttle_record
from tidegate.ledger.quota_leases import HOLD_S, QuotaLeases
from tidegate.ledger.throttle_record import quota_call
from tidegate.settings import QuotaSettings, Settings, TenantSettings, parse_settings
from tidegate.throttle import Throttle

SLOW = 0.001  # tokens per second: no refill within a test


def job(route: str = "reports") -> Job:
    return Job(id=new_job_id(route), route=route, method="POST", path="/" + route, body=b"x")


async def set_throttle(redis: Redis, route: str, burst: int, rate: float = SLOW) -> None:
    state = Throttle(rate, burst, "max_replicas", "test", time.time(), 429)
    await throttle_record.Throttles(redis).apply(route, state, ttl_s=60, announce=True)


async def outcomes(book: Ledger, settings: Settings, n: int, **kw: Any) -> list[str]:
    out = []
    for _ in range(n):
        try:
            await book.admit(settings.route("reports"), job(), None, **kw)
            out.append("admitted")
        except Refused as e:
            out.append(e.cause)
    return out


async def test_bucket_admits_its_burst_then_refuses_and_counts(
    redis: Redis, settings: Settings
) -> None:
    book = Ledger(redis, settings.routes)
    assert await outcomes(book, settings, 3) == ["admitted"] * 3  # not throttled
    await set_throttle(redis, "reports", burst=5)
    refused_first = await outcomes(book, settings, 8, priority="high")
    assert refused_first == ["admitted"] * 5 + ["capacity"] * 3
    keys = RouteKeys("reports")
    assert await redis.xlen(keys.requests) == 3 + 5  # nothing refused was enqueued
    assert int(await redis.get(keys.refused) or 0) == 3  # offered load, for the scaler
    with pytest.raises(Refused) as refused:
        await book.admit(settings.route("reports"), job(), None)
    assert refused.value.retry_after_s > 100  # one token at 0.001/s
    assert refused.value.limit == 5
    await throttle_record.Throttles(redis).lift("reports")
    assert await outcomes(book, settings, 2) == ["admitted"] * 2


async def test_lower_priority_classes_are_refused_first(redis: Redis, settings: Settings) -> None:
    book = Ledger(redis, settings.routes)
    await set_throttle(redis, "reports", burst=10)
    # low needs half the burst left over: admitted while 6 or more tokens remain
    assert await outcomes(book, settings, 6, priority="low") == ["admitted"] * 5 + ["capacity"]
    # normal needs a tenth in reserve (1 + 1 tokens): 5 left -> admitted down to 2
    normal = await outcomes(book, settings, 5, priority="normal")
    assert normal == ["admitted"] * 4 + ["capacity"]
    # high takes the last token
    assert await outcomes(book, settings, 2, priority="high") == ["admitted", "capacity"]


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def tenant_settings(redis_url: str, quota: dict[str, Any] | None = None) -> Settings:
    base = make_settings(redis_url)
    raw = {
        "redis": {"url": redis_url},
        "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"},
        "tenants": [
            {"name": "acme", "api_key_sha256": key_digest("acme-key"), "quota": quota},
            {"name": "zenith", "api_key_sha256": key_digest("zenith-key")},
        ],
        "routes": [
            {
                "name": r.name,
                "match": {"path_prefix": r.match.path_prefix, "methods": list(r.match.methods)},
                "mode": r.mode,
                **({"upstream": r.upstream} if r.upstream else {}),
            }
            for r in base.routes
        ],
    }
    if quota is None:
        del raw["tenants"][0]["quota"]  # type: ignore[index]
    return parse_settings(raw)


async def test_fair_share_keeps_one_tenant_from_taking_the_others_share(
    redis: Redis, redis_url: str
) -> None:
    settings = tenant_settings(redis_url)
    acme, zenith = settings.tenants
    book = Ledger(redis, settings.routes)
    await set_throttle(redis, "reports", burst=10)
    high = {"priority": "high"}
    assert await outcomes(book, settings, 1, tenant=acme, **high) == ["admitted"]
    assert await outcomes(book, settings, 1, tenant=zenith, **high) == ["admitted"]
    # Both active, equal weights: acme's surge stops at its share, half of the
    # burst (without shares it would take all 8 tokens left) ...
    surge = await outcomes(book, settings, 8, tenant=acme, **high)
    assert surge == ["admitted"] * 5 + ["capacity"] * 3
    # ... so zenith still finds tokens in the route's bucket.
    later = await outcomes(book, settings, 5, tenant=zenith, **high)
    assert later == ["admitted"] * 3 + ["capacity"] * 2


async def test_quotas_and_tenant_isolation_through_the_gateway(
    redis: Redis, redis_url: str
) -> None:
    settings = tenant_settings(redis_url, quota={"rate_per_s": SLOW, "burst": 2})
    async with running_gateway(settings) as gw:

        async def post(key: str | None) -> tuple[int, dict[str, Any], Any]:
            headers = {"X-Api-Key": key} if key else {}
            async with gw.http.post(gw.url("/reports"), data=b"r", headers=headers) as r:
                return r.status, dict(r.headers), await r.json()

        status, _, body = await post(None)
        assert status == 401
        assert body["type"].endswith("api-key-required")
        assert (await post("wrong-key"))[0] == 401
        first = await post("acme-key")
        assert [first[0], (await post("acme-key"))[0]] == [202, 202]
        status, headers, body = await post("acme-key")  # the quota's burst is 2
        assert status == 429
        assert body["cause"] == "quota"
        assert body["type"].endswith("quota-exceeded")
        assert int(headers["Retry-After"]) >= 1
        assert headers["RateLimit-Policy"].startswith('"quota";q=2;w=')
        assert headers["RateLimit"].startswith('"quota";r=0;t=')
        assert (await post("zenith-key"))[0] == 202  # another tenant: its own limits

        job_url = first[1]["Location"]
        async with gw.http.get(gw.url(job_url), headers={"X-Api-Key": "acme-key"}) as r:
            assert r.status == 200
        async with gw.http.get(gw.url(job_url), headers={"X-Api-Key": "zenith-key"}) as r:
            assert r.status == 404  # not its job: the same answer as an unknown one
        async with gw.http.get(gw.url(job_url)) as r:
            assert r.status == 401
        metric = gw.gw.metrics.throttled.labels("reports", "quota", "acme")._value.get()
        assert metric == 1

        # Proxy routes have no queue; the quota still applies (its own bucket).
        proxied = []
        for _ in range(3):
            async with gw.http.get(gw.url("/orders/1"), headers={"X-Api-Key": "acme-key"}) as r:
                proxied.append(r.status)
        assert proxied == [502, 502, 429]  # the upstream is unreachable; the third is over


async def test_gateways_share_one_bucket_and_answer_with_the_headers(
    redis: Redis, settings: Settings
) -> None:
    await set_throttle(redis, "reports", burst=6)
    async with running_gateway(settings) as one, running_gateway(settings) as two:

        async def post(gw: Any) -> tuple[int, dict[str, str], Any]:
            async with gw.http.post(gw.url("/reports"), data=b"r") as r:
                return r.status, dict(r.headers), await r.json()

        answers = await asyncio.gather(*(post(gw) for gw in (one, two) for _ in range(10)))
    statuses = [status for status, _, _ in answers]
    # One bucket for both gateways: 6 tokens, of which the normal class leaves
    # a tenth (0.6) to high-priority requests: 5 admitted.
    assert statuses.count(202) == 5
    assert statuses.count(429) == 15
    _, headers, body = next(a for a in answers if a[0] == 429)
    assert body["cause"] == "capacity"
    assert body["type"].endswith("capacity-throttled")
    assert headers["Content-Type"] == "application/problem+json"
    assert int(headers["Retry-After"]) >= 1
    assert headers["RateLimit-Policy"].startswith('"capacity";q=6;w=')
    assert headers["RateLimit"].startswith('"capacity";r=0;t=')


async def test_a_route_may_throttle_with_503(redis: Redis, settings: Settings) -> None:
    settings = make_settings(
        settings.redis.url,
        redis_mode=settings.redis.mode,
        scaler={"target": {"kind": "local", "upstream": "http://x"}, "throttle": {"status": 503}},
    )
    await set_throttle(redis, "orders", burst=0)
    async with running_gateway(settings) as gw, gw.http.post(gw.url("/orders"), data=b"o") as r:
        assert r.status == 503
        assert "RateLimit" in r.headers


async def test_gateway_view_follows_pubsub_and_the_timer(redis: Redis, settings: Settings) -> None:
    async with running_gateway(settings) as gw:
        watcher = gw.gw.throttles
        await set_throttle(redis, "reports", burst=3)  # announced
        await wait_until(lambda: _ready(watcher.states["reports"] is not None), what="pub/sub")
        assert gw.gw.metrics.throttle_active.labels("reports")._value.get() == 1
        assert gw.gw.metrics.throttle_tokens.labels("reports")._value.get() == 3  # full
        # Lifted without an announcement (as if the message was missed): the
        # periodic re-read corrects the view.
        await redis.delete(RouteKeys("reports").throttle)
        await wait_until(lambda: _ready(watcher.states["reports"] is None), 10, "the re-read")
        assert gw.gw.metrics.throttle_active.labels("reports")._value.get() == 0


async def _ready(value: bool) -> bool:
    return value


# Quota leases on proxy routes (``tidegate.ledger.quota_leases``).

QUOTA_TENANT = "acme"


def quota_tenant(burst: int) -> TenantSettings:
    return TenantSettings(
        name=QUOTA_TENANT,
        api_key_sha256="0" * 64,
        quota=QuotaSettings(rate_per_s=SLOW, burst=burst),
    )


@pytest.mark.parametrize(
    ("burst", "wants", "taken"),
    [
        # a lease comes only from the part of the bucket above half the burst
        (100, [30, 30, 30, 1], [30, 20, 1, 1]),
        (10, [50], [5]),
        (100, [1, 1000], [1, 49]),
        # below half: one token per call, each call one request, to the last token
        (3, [5, 5, 5, 5], [1, 1, 1, "quota"]),
        (1, [10, 10], [1, "quota"]),
    ],
)
async def test_the_quota_script_leases_only_from_the_upper_half_of_the_bucket(
    redis: Redis, settings: Settings, burst: int, wants: list[int], taken: list[Any]
) -> None:
    ledger = Ledger(redis, settings.routes)
    tenant = quota_tenant(burst)
    assert tenant.quota is not None
    answers: list[Any] = []
    for want in wants:
        try:
            answers.append(
                await ledger.runner.run(quota_call("reads", QUOTA_TENANT, tenant.quota, want))
            )
        except Refused as e:
            answers.append(e.cause)
    assert answers == taken
    left = await throttle_level(redis, RouteKeys("reads").quota(QUOTA_TENANT))
    spent = sum(a for a in answers if isinstance(a, int))
    assert round(left) == burst - spent


async def throttle_level(redis: Redis, key: str) -> float:
    return float(await redis.hget(key, "tokens") or 0)


class FrozenClock:
    """Leases never expire and every call looks instant: leases grow fast."""

    def __call__(self) -> float:
        return 0.0


async def test_gateways_holding_leases_never_pass_more_than_the_bucket(
    redis: Redis, settings: Settings
) -> None:
    burst, per_gateway, lanes = 200, 250, 4
    tenant, route = quota_tenant(burst), settings.route("reads")
    gateways = [Ledger(redis, settings.routes, batched=True) for _ in range(2)]
    calls = 0
    for book in gateways:
        book.open()
        book.quota_leases = QuotaLeases(FrozenClock())
        run = book.runner.run

        async def counted(call: Any, run: Any = run) -> Any:
            nonlocal calls
            answer = await run(call)
            calls += isinstance(answer, int)  # calls that passed a request
            return answer

        book.runner.run = counted  # type: ignore[method-assign,assignment]

    async def lane(book: Ledger, n: int) -> list[str]:
        out = []
        for _ in range(n):
            try:
                await book.take_quota(route, tenant)
                out.append("passed")
            except Refused as e:
                out.append(e.cause)
        return out

    try:
        results = await asyncio.gather(
            *(lane(book, per_gateway // lanes) for book in gateways for _ in range(lanes))
        )
    finally:
        for book in gateways:
            await book.close()
    outcomes_ = [o for lane_out in results for o in lane_out]
    assert outcomes_.count("passed") == burst  # every token, and not one more
    assert outcomes_.count("quota") == 2 * (per_gateway // lanes) * lanes - burst
    # The upper half went out in leases, the lower half one token per call.
    assert calls < burst
    assert all(book.quota_leases.held((route.name, QUOTA_TENANT)) == 0 for book in gateways)
    assert await throttle_level(redis, RouteKeys("reads").quota(QUOTA_TENANT)) < 1


async def test_leased_tokens_expire_and_are_not_returned(redis: Redis, settings: Settings) -> None:
    now = [0.0]
    book = Ledger(redis, settings.routes)
    book.quota_leases = QuotaLeases(lambda: now[0])
    tenant, route = quota_tenant(100), settings.route("reads")
    key = RouteKeys("reads").quota(QUOTA_TENANT)
    for _ in range(3):  # quick calls: the lease grows
        await book.take_quota(route, tenant)
    held = book.quota_leases.held((route.name, QUOTA_TENANT))
    assert held > 0
    level = await throttle_level(redis, key)
    assert round(level) == 100 - 3 - held  # held tokens are out of the bucket
    now[0] += HOLD_S
    assert book.quota_leases.held((route.name, QUOTA_TENANT)) == 0
    await book.take_quota(route, tenant)  # no held token: a call to Redis
    assert round(await throttle_level(redis, key)) == round(level) - 1


async def test_a_tenants_leased_tokens_serve_no_other_tenant_and_no_other_route(
    redis: Redis, settings: Settings
) -> None:
    book = Ledger(redis, settings.routes)
    book.quota_leases = QuotaLeases(FrozenClock())
    acme, reads = quota_tenant(100), settings.route("reads")
    zenith = TenantSettings(
        name="zenith", api_key_sha256="1" * 64, quota=QuotaSettings(rate_per_s=SLOW, burst=2)
    )
    for _ in range(3):  # acme busy: it holds a lease
        await book.take_quota(reads, acme)
    held = book.quota_leases.held((reads.name, QUOTA_TENANT))
    assert held > 0

    async def outcomes_of(tenant: TenantSettings, route_name: str, n: int) -> list[str]:
        out = []
        for _ in range(n):
            try:
                await book.take_quota(settings.route(route_name), tenant)
                out.append("passed")
            except Refused as e:
                out.append(e.cause)
        return out

    # Another tenant on the same route: its own bucket, whatever acme holds.
    assert await outcomes_of(zenith, "reads", 3) == ["passed", "passed", "quota"]
    # The same tenant on another route: that route's bucket, not the lease.
    level_before = await throttle_level(redis, RouteKeys("reads").quota(QUOTA_TENANT))
    assert await outcomes_of(acme, "orders", 1) == ["passed"]
    assert round(await throttle_level(redis, RouteKeys("orders").quota(QUOTA_TENANT))) == 99
    assert book.quota_leases.held((reads.name, QUOTA_TENANT)) == held
    assert await throttle_level(redis, RouteKeys("reads").quota(QUOTA_TENANT)) == level_before
