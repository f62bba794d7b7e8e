"""Quota leases on a fake clock: how many tokens to ask for, holding, expiry.

The Redis side (a lease only from the bucket's upper half, never more than
the bucket across gateways) is tested against a real server in
``tests/integration/gateway/test_throttle.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from tidegate.errors import RedisUnavailable
from tidegate.ledger import Ledger
from tidegate.ledger.quota_leases import GROWTH, HOLD_S, MOST, REFILL_EVERY_S, QuotaLeases
from tidegate.settings import QuotaSettings, TenantSettings

KEY = ("orders", "acme")


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def leases() -> tuple[QuotaLeases, Clock]:
    clock = Clock()
    return QuotaLeases(clock), clock


def test_a_key_seen_seldom_asks_for_its_own_token_only() -> None:
    book, clock = leases()
    for _ in range(5):
        assert not book.spend(KEY)
        asked = book.ask(KEY)
        assert asked == 1
        book.taken(KEY, asked, 1)
        clock.now_s += HOLD_S  # the last token lasted a whole hold: no lease
    assert book.held(KEY) == 0


@pytest.mark.parametrize(
    ("last", "lasted_s", "want"),
    [
        (1, REFILL_EVERY_S, 1),  # one token per interval: no lease
        (1, REFILL_EVERY_S / 2, 2),
        (1, REFILL_EVERY_S / 100, GROWTH),  # grows at most GROWTH-fold per call
        (40, REFILL_EVERY_S, 40),  # steady: the same again
        (40, REFILL_EVERY_S * 2, 20),  # slower: shrinks
        (40, REFILL_EVERY_S / 2, 80),
        (MOST, 0.0, MOST),  # never above MOST
        (40, HOLD_S, 1),  # went quiet: start over
    ],
)
def test_a_lease_is_sized_to_last_one_refill_interval(
    last: int, lasted_s: float, want: int
) -> None:
    book, clock = leases()
    asked = book.ask(KEY)
    book.taken(KEY, asked, last)
    for _ in range(last - 1):
        assert book.spend(KEY)
    assert not book.spend(KEY)
    clock.now_s += lasted_s
    assert book.ask(KEY) == want


def test_requests_meanwhile_ask_for_one_token_and_do_not_size_the_next() -> None:
    book, clock = leases()
    book.taken(KEY, book.ask(KEY), 1)
    clock.now_s += REFILL_EVERY_S / 4
    leading = book.ask(KEY)
    assert leading == GROWTH
    followers = [book.ask(KEY) for _ in range(3)]
    assert followers == [0, 0, 0]  # each asks Redis for its own token only
    for asked in followers:
        book.taken(KEY, asked, 1)
    assert book.held(KEY) == 0
    book.taken(KEY, leading, GROWTH)
    assert book.held(KEY) == GROWTH - 1
    for _ in range(GROWTH - 1):
        assert book.spend(KEY)
    clock.now_s += REFILL_EVERY_S / 4
    assert book.ask(KEY) == GROWTH * GROWTH  # sized by the lease, not the followers


def test_a_failed_or_refused_lease_call_lets_the_next_request_ask() -> None:
    book, _ = leases()
    book.taken(KEY, book.ask(KEY), 1)
    leading = book.ask(KEY)
    assert book.ask(KEY) == 0
    book.failed(KEY, leading)
    assert book.ask(KEY) > 0


def test_tokens_not_spent_within_the_hold_are_dropped() -> None:
    book, clock = leases()
    book.taken(KEY, book.ask(KEY), 10)
    assert book.held(KEY) == 9
    assert book.spend(KEY)
    clock.now_s += HOLD_S
    assert book.held(KEY) == 0
    assert not book.spend(KEY)
    book.taken(KEY, book.ask(KEY), 3)  # a new lease does not revive the old tokens
    assert book.held(KEY) == 2


def test_keys_hold_their_own_tokens() -> None:
    book, _ = leases()
    book.taken(KEY, book.ask(KEY), 5)
    other = ("orders", "zenith")
    assert not book.spend(other)
    assert book.ask(other) == 1
    assert book.held(KEY) == 4


class Stalled:
    """A runner whose calls never answer (Redis frozen)."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.called = asyncio.Event()

    async def run(self, call: Any) -> Any:
        self.calls.append(call)
        self.called.set()
        await asyncio.Event().wait()


class Failing:
    async def run(self, call: Any) -> Any:
        raise RedisUnavailable("Redis unreachable")


ACME = TenantSettings(
    name="acme", api_key_sha256="0" * 64, quota=QuotaSettings(rate_per_s=10, burst=100)
)


@pytest.mark.parametrize("failure", ["cancelled", "unavailable"])
async def test_a_quota_call_that_ends_without_an_answer_releases_the_lease(
    failure: str,
) -> None:
    from tests.conftest import make_settings

    settings = make_settings("redis://127.0.0.1:1/0")
    route = settings.routes[0]
    ledger = Ledger(fakeredis.FakeAsyncRedis(), settings.routes)
    book = ledger.quota_leases
    book.taken((route.name, "acme"), book.ask((route.name, "acme")), 1)  # seen before: leading
    if failure == "cancelled":
        stalled = Stalled()
        ledger.runner = stalled  # type: ignore[assignment]
        task = asyncio.create_task(ledger.take_quota(route, ACME))
        await stalled.called.wait()
        assert stalled.calls[0].want > 1  # the leading call asked for a lease
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        ledger.runner = Failing()  # type: ignore[assignment]
        with pytest.raises(RedisUnavailable):
            await ledger.take_quota(route, ACME)
    assert book.ask((route.name, "acme")) > 0  # not stuck waiting for an answer


class Granting:
    """A runner that gives every quota call the tokens it asks for, once let go."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.go = asyncio.Event()

    async def run(self, call: Any) -> Any:
        self.calls.append(call)
        await self.go.wait()
        return call.want


async def test_requests_wait_for_a_lease_on_its_way_instead_of_calling_redis() -> None:
    from tests.conftest import make_settings

    route = make_settings("redis://127.0.0.1:1/0").routes[0]
    ledger = Ledger(fakeredis.FakeAsyncRedis(), [route])
    clock = Clock()
    ledger.quota_leases = QuotaLeases(clock)
    key = (route.name, "acme")
    ledger.quota_leases.taken(key, ledger.quota_leases.ask(key), 1)
    clock.now_s += REFILL_EVERY_S / 100  # busy: the next call asks for a lease
    granting = Granting()
    ledger.runner = granting  # type: ignore[assignment]
    requests = [asyncio.create_task(ledger.take_quota(route, ACME)) for _ in range(GROWTH)]
    await asyncio.sleep(0)
    assert [call.want for call in granting.calls] == [GROWTH]  # one call, for a lease
    granting.go.set()
    await asyncio.gather(*requests)
    assert len(granting.calls) == 1  # the others spent from the lease
    assert ledger.quota_leases.held(key) == 0


async def test_requests_do_not_wait_for_a_one_token_call() -> None:
    from tests.conftest import make_settings

    route = make_settings("redis://127.0.0.1:1/0").routes[0]
    ledger = Ledger(fakeredis.FakeAsyncRedis(), [route])
    granting = Granting()
    ledger.runner = granting  # type: ignore[assignment]
    requests = [asyncio.create_task(ledger.take_quota(route, ACME)) for _ in range(3)]
    await asyncio.sleep(0)
    assert [call.want for call in granting.calls] == [1, 1, 1]  # a quiet key: each its own
    granting.go.set()
    await asyncio.gather(*requests)
