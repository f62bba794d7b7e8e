"""The admin port's status page in a real browser (headless Chromium): the
route rows render, the numbers follow the load and the scaler's view, the
charts have axes, units and legends and draw the gateway's own history (so a
reload keeps it), and nothing from Redis is ever taken as HTML."""

from __future__ import annotations

import time
from dataclasses import replace
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
    # One server is enough: the page reads /status. Samples every 0.2 s, so
    # that the charts fill within the test.
    base = make_settings(redis_url)
    return replace(base, gateway=replace(base.gateway, status_history_interval_s=0.2))


ROW = 'document.querySelector(\'tr[data-route="{route}"] [data-field="{field}"]\')'
SECTION = "document.querySelector('#charts section[data-route=\"{route}\"]')"
CHART = 'document.querySelector(\'#charts section[data-route="{route}"] [data-chart="{chart}"]\')'


async def field(page: Page, route: str, name: str) -> Any:
    return await page.evaluate(f"({ROW.format(route=route, field=name)} || {{}}).textContent")


async def shows(page: Page, route: str, name: str, text: str) -> None:
    async def there() -> bool:
        return bool(await field(page, route, name) == text)

    await wait_until(there, timeout_s=15, what=f"{route} {name} to show {text!r}")


async def chart_count(page: Page, route: str, chart: str, selector: str) -> int:
    found = CHART.format(route=route, chart=chart)
    return int(await page.evaluate(f"({found}?.querySelectorAll('{selector}') || []).length"))


async def chart_text(page: Page, route: str, chart: str, selector: str) -> Any:
    found = CHART.format(route=route, chart=chart)
    return await page.evaluate(f"{found}?.querySelector('{selector}')?.textContent")


async def points(page: Page, route: str, chart: str, *, at_least: int) -> bool:
    found = CHART.format(route=route, chart=chart)
    count = await page.evaluate(f"Number({found}?.querySelector('svg').dataset.points)")
    return bool(count and count >= at_least)


async def ticks_y(page: Page, route: str, chart: str) -> Any:
    found = CHART.format(route=route, chart=chart)
    return await page.evaluate(f"[...{found}.querySelectorAll('.tick-y')].map(t => t.textContent)")


async def drawn(page: Page, route: str, chart: str, series: str) -> bool:
    """The series' line has at least one point in the chart."""
    found = CHART.format(route=route, chart=chart)
    d = await page.evaluate(
        f"{found}?.querySelector('path[data-series=\"{series}\"]')?.getAttribute('d') || ''"
    )
    return "M" in str(d)


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
        "refused_rate": 0.5,
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
        for name in ("replicas", "rates", "refused", "exhausted", "reason"):
            assert await field(page, "reports", name) == "", name  # no scaler has published

        for n in range(3):
            async with gateway.http.post(gateway.url("/reports"), data=str(n).encode()) as r:
                assert r.status == 202
        await shows(page, "reports", "backlog", "3")

        await view_record.Views(redis).publish("reports", view(), interval_s=5)
        await shows(page, "reports", "replicas", "4 / 2 / 10")
        await shows(page, "reports", "rates", "12.5 / 4.0")
        await shows(page, "reports", "refused", "0.5")
        await shows(page, "reports", "exhausted", "no")
        await shows(page, "reports", "reason", "surge")
        proxy = await page.evaluate(
            "document.querySelector('tr[data-route=\"reads\"]').textContent"
        )
        assert "proxy" in proxy


async def test_each_queued_route_has_charts_with_axes_units_and_legends(
    gateway: RunningGateway, settings: Settings, redis: Connection
) -> None:
    for n in range(3):
        async with gateway.http.post(gateway.url("/reports"), data=str(n).encode()) as r:
            assert r.status == 202
    async with chromium_page() as page:
        await page.goto(gateway.admin_url("/"))
        await wait_until(
            lambda: points(page, "reports", "backlog", at_least=3),
            timeout_s=15,
            what="the backlog chart to fill",
        )
        sections = await page.evaluate(
            "[...document.querySelectorAll('#charts section')].map(s => s.dataset.route)"
        )
        assert sections == [r.name for r in settings.routes if r.mode != "proxy"]
        charts = await page.evaluate(
            f"[...{SECTION.format(route='reports')}.querySelectorAll('figure')].map(f => ["
            "f.dataset.chart, f.querySelector('.unit').textContent,"
            "[...f.querySelectorAll('.key')].map(k => k.textContent),"
            "[...f.querySelectorAll('.tick-x')].map(t => t.textContent)])"
        )
        minutes = ["-15 min", "-10 min", "-5 min", "now"]
        assert charts == [
            ["backlog", "(entries)", ["waiting", "pending"], minutes],
            ["rates", "(requests/s)", ["in", "out", "refused"], minutes],
            ["replicas", "(pods)", ["desired", "ready", "max", "exhausted"], minutes],
            ["throttle", "(requests/s)", ["throttle"], minutes],
        ]
        # The y axis is scaled to the figures: 3 waiting tops out at 5.
        assert await ticks_y(page, "reports", "backlog") == ["0", "2.5", "5"]
        assert await drawn(page, "reports", "backlog", "backlog")
        # Nobody published a scaler view or a throttle yet.
        assert not await drawn(page, "reports", "replicas", "desired_replicas")
        assert await chart_text(page, "reports", "throttle", ".empty") == (
            "not throttled in this window"
        )

        await view_record.Views(redis).publish(
            "reports", view(desired_replicas=10, ready_replicas=10, exhausted=True), interval_s=5
        )
        route = settings.route("reports")
        await throttle_record.Throttles(redis).apply(
            route,
            Throttle(rate_per_s=2.5, burst=5, reason="exhausted", detail="", since_s=time.time()),
            ttl_s=60,
            announce=False,
        )

        async def scaler_charted() -> bool:
            return (
                await drawn(page, "reports", "replicas", "desired_replicas")
                and await drawn(page, "reports", "throttle", "throttle_per_s")
                and await chart_count(page, "reports", "replicas", "rect.band") >= 1
            )

        await wait_until(scaler_charted, timeout_s=15, what="replicas, exhausted and throttle")
        assert await ticks_y(page, "reports", "replicas") == ["0", "5", "10"]
        assert await chart_count(page, "reports", "throttle", ".empty") == 0


async def test_the_history_is_the_gateways_and_survives_a_reload(
    gateway: RunningGateway,
) -> None:
    async with chromium_page() as page:
        await page.goto(gateway.admin_url("/"))
        await wait_until(
            lambda: points(page, "reports", "backlog", at_least=8),
            timeout_s=15,
            what="eight samples in the chart",
        )
        await page.goto(gateway.admin_url("/"))

        async def first_history_drawn() -> bool:
            # Right after the navigation the new document may have no body yet.
            return bool(
                await page.evaluate("!!document.body && document.body.dataset.histories === '1'")
            )

        await wait_until(first_history_drawn, timeout_s=15, what="the reloaded page's first draw")
        # A page that kept its own history would start again at one point.
        assert await points(page, "reports", "backlog", at_least=8)


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
