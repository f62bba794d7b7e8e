"""Job ids and Redis key names."""

from __future__ import annotations

from collections import Counter

import pytest

from tidegate.keys import (
    SLOTS,
    Layout,
    PartitionChooser,
    RouteKeys,
    job_keys,
    new_job_id,
    partition_tags,
    parts_of,
    route_of,
    slot_of,
    tag_of,
)


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


def test_slots_are_computed_as_redis_computes_them() -> None:
    from redis.crc import key_slot

    for tag in ["orders", "a", "orders~0", "x" * 48, "reports~123", "ü"]:
        assert slot_of(tag) == key_slot(tag.encode())


@pytest.mark.parametrize("partitions", [2, 3, 5, 16, 256])
def test_partitions_fall_in_equal_slices_of_the_slots(partitions: int) -> None:
    tags = partition_tags("orders", partitions)
    assert len(tags) == partitions
    assert len(set(tags)) == partitions
    for p, tag in enumerate(tags):
        assert p * SLOTS // partitions <= slot_of(tag) < (p + 1) * SLOTS // partitions
        assert route_of(new_job_id(tag)) == "orders"
        keys = job_keys(new_job_id(tag))
        assert keys is not None
        assert keys.prefix == "tg:{" + tag + "}:"


def test_one_partition_is_the_route_itself() -> None:
    assert partition_tags("orders") == ("orders",)
    (keys,) = parts_of("orders")
    assert keys.requests == RouteKeys("orders").requests == "tg:{orders}:requests"
    assert parts_of(Layout("orders", 1)) == parts_of("orders")


@pytest.mark.parametrize(
    "bad",
    [
        "orders~.abcdefghijklmnopqrstuvwx",
        "orders~01.abcdefghijklmnopqrstuvwx",
        "orders~-1.abcdefghijklmnopqrstuvwx",
        "orders~1~2.abcdefghijklmnopqrstuvwx",
        "orders~1234567.abcdefghijklmnopqrstuvwx",
        "orders~\uff11.abcdefghijklmnopqrstuvwx",  # a full-width digit one
        "orders~1 .abcdefghijklmnopqrstuvwx",
        "~1.abcdefghijklmnopqrstuvwx",
        "Orders~1.abcdefghijklmnopqrstuvwx",
        "orders}~1.abcdefghijklmnopqrstuvwx",
        "orders~1.abcdefghijklmnopqrstuv}x",
    ],
)
def test_malformed_partition_tags_name_no_job(bad: str) -> None:
    assert tag_of(bad) is None
    assert job_keys(bad) is None


def test_chooser_spreads_each_tenant_evenly_and_keeps_keys_in_place() -> None:
    chooser, layout = PartitionChooser(), Layout("orders", 3)
    tags = partition_tags("orders", 3)
    # Tenants interleaved so that a plain round-robin would send acme always to one partition.
    seen = [chooser.tag(layout, tenant) for _ in range(30) for tenant in ("acme", "b", "c")]
    acme = seen[0::3]
    assert Counter(acme) == dict.fromkeys(tags, 10)
    assert Counter(seen) == dict.fromkeys(tags, 30)
    keyed = {chooser.tag(layout, "acme", f"key-{n}") for n in range(30)}
    assert keyed == set(tags)  # keys spread too
    again = PartitionChooser()  # another gateway process
    for n in range(30):
        key = f"key-{n}"
        assert chooser.tag(layout, "acme", key) == again.tag(layout, "acme", key)
    assert chooser.tag("orders") == "orders"
