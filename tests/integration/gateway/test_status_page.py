"""The admin port's status page in a real browser (headless Chromium): the
route rows render, the numbers follow the load and the scaler's view, and
nothing from Redis is ever taken as HTML."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.browser import CHROMIUM, Page, chromium_page
from tests.conftest import RunningGateway, make_settings, wait_until
from tidegate.ledger import throttle_record, view_record
from tidegate.ledger.client import Connection
from tidegate.scaler_view import ScalerView
from tidegate.settings import Settings
from tidegate.throttle import Throttle

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)"
)


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url)  # one server is enough: the page reads /status


ROW = 'document.querySelector(\'tr[data-route="{route}"] [data-field="{field}"]\')'


async def field(page: Page, route: str, name: str) -> Any:
    return await page.evaluate(f"({ROW.format(route=route, field=name)} || {{}}).textContent")


async def shows(page: Page, route: str, name: str, text: str) -> None:
    async def there() -> bool:
        return bool(await field(page, route, name) == text)

    await wait_until(there, timeout_s=15, what=f"{route} {name} to show {text!r}")


def view(**changes: Any) -> ScalerView:
    values: dict[str, Any] = {
        "waiting": 3,
        "pending": 0,
        "oldest_waiting_age_s": 1.0,
        "arrival_rate": 12.5,
        "drain_rate": 4.0,
        "service_rate": 2.0,
        "desired_replicas": 4,
        "needed_replicas": 4,
        "current_replicas": 2,
        "ready_replicas": 2,
        "max_replicas": 10,
        "exhausted": False,
        "reason": "surge",
        "target": "deployment shop/reports",
        "throttle": None,
        "refused_rate": 0.0,
        "updated_at_s": time.time(),
    }
    values.update(changes)
    return ScalerView(**values)


async def test_the_page_shows_every_route_and_follows_the_load(
    gateway: RunningGateway, settings: Settings, redis: Connection
) -> None:
    async with chromium_page() as page:
        await page.goto(gateway.admin_url("/"))

        async def rows() -> bool:
            found = await page.evaluate(
                "[...document.querySelectorAll('#routes tbody tr')].map(r => r.dataset.route)"
            )
            return bool(found == [r.name for r in settings.routes])

        await wait_until(rows, timeout_s=15, what="a row per route, in config order")
        await shows(page, "reports", "backlog", "0")
        assert await field(page, "reports", "replicas") == ""  # no scaler has published

        for n in range(3):
            async with gateway.http.post(gateway.url("/reports"), data=str(n).encode()) as r:
                assert r.status == 202
        await shows(page, "reports", "backlog", "3")

        await view_record.Views(redis).publish("reports", view(), interval_s=5)
        await shows(page, "reports", "replicas", "4 / 2 / 10")
        await shows(page, "reports", "rates", "12.5 / 4.0")

        async def charted() -> bool:
            points = await page.evaluate(
                f"Number({ROW.format(route='reports', field='backlog')}"
                ".parentElement.querySelector('svg.spark').dataset.points)"
            )
            return bool(points and points >= 3)

        await wait_until(charted, timeout_s=15, what="the backlog chart to fill")
        proxy = await page.evaluate(
            "document.querySelector('tr[data-route=\"reads\"]').textContent"
        )
        assert "proxy" in proxy


async def test_a_hostile_reason_is_text_never_markup(
    gateway: RunningGateway, settings: Settings, redis: Connection
) -> None:
    hostile = '<img src=x onerror="document.body.dataset.owned=1">'
    route = settings.route("reports")
    await throttle_record.Throttles(redis).apply(
        route,
        Throttle(rate_per_s=2.5, burst=5, reason=hostile, detail=hostile, since_s=time.time()),
        ttl_s=60,
        announce=False,
    )
    async with chromium_page() as page:
        await page.goto(gateway.admin_url("/"))
        await shows(page, "reports", "throttle", f"2.5/s ({hostile})")
        assert await page.evaluate("document.querySelectorAll('img').length") == 0
        assert await page.evaluate("document.body.dataset.owned") is None
        assert (
            await page.evaluate("document.querySelector('tr[data-route=\"reports\"]').className")
            == "throttled"
        )


async def test_the_page_is_served_with_a_strict_policy(gateway: RunningGateway) -> None:
    for path, kind in (
        ("/", "text/html"),
        ("/status-page/page.js", "text/javascript"),
        ("/status-page/page.css", "text/css"),
    ):
        async with gateway.http.get(gateway.admin_url(path)) as r:
            assert r.status == 200
            assert r.content_type == kind
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/status-page/../admin.py", "/status-page/__init__.py", "/status-page/x.js"):
        async with gateway.http.get(gateway.admin_url(path)) as r:
            assert r.status == 404, path
