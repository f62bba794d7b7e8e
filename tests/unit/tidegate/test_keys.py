"""Job ids and Redis key names."""

from __future__ import annotations

import pytest

from tidegate.keys import RouteKeys, new_job_id, route_of


def test_job_ids_are_unique_unguessable_and_name_their_route() -> None:
    ids = {new_job_id("orders") for _ in range(1000)}
    assert len(ids) == 1000
    for job_id in ids:
        assert route_of(job_id) == "orders"
        assert len(job_id.partition(".")[2]) == 24  # 144 random bits


@pytest.mark.parametrize(
    "bad", ["", "orders", "orders.", "Orders.abcdefghijklmnopqrstuvwx", "orders.short", "a.b/c"]
)
def test_malformed_job_ids_have_no_route(bad: str) -> None:
    assert route_of(bad) is None


def test_route_keys_share_a_hash_tag() -> None:
    keys = RouteKeys("orders")
    names = [keys.requests, keys.events, keys.dead, keys.job("j"), keys.result("j")]
    assert all(name.startswith("tg:{orders}:") for name in names)
