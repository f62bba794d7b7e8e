"""One pairing of tenant and Idempotency-Key for the record and the partition."""

from __future__ import annotations

import hashlib
import zlib

import pytest

from tidegate import idempotency
from tidegate.keys import Layout, PartitionChooser, parts_of

CASES = [
    ("", "order-17"),
    ("", "café"),
    ("", ""),
    ("acme", "order-17"),
    ("globex", "order-17"),
    ("acme", "a\nb"),
    ("a\nb", "c"),
]


@pytest.mark.parametrize(("tenant", "key"), CASES)
def test_records_and_partitions_stay_where_earlier_releases_put_them(tenant: str, key: str) -> None:
    """Keys admitted before the pairing was one function keep their record
    and their partition: a retry across an upgrade meets its first job."""
    before = hashlib.sha256((f"{tenant}\n{key}" if tenant else key).encode()).hexdigest()
    assert idempotency.digest(key, tenant) == before
    for partitions in (2, 3, 7):
        chosen = zlib.crc32(f"{tenant}\n{key}".encode()) % partitions
        assert idempotency.partition(key, tenant, partitions) == chosen


def test_another_tenant_s_equal_key_is_another_record() -> None:
    digests = {idempotency.digest("order-17", t) for t in ("", "acme", "globex", "acme\n")}
    assert len(digests) == 4


def test_a_key_that_is_not_utf8_is_refused_not_stored() -> None:
    with pytest.raises(UnicodeEncodeError):
        idempotency.digest("caf\udce9", "acme")


def test_the_chooser_sends_a_key_to_the_partition_its_pairing_says() -> None:
    route = Layout("orders", 5)
    tags = [p.tag for p in parts_of(route)]
    chooser = PartitionChooser()
    for tenant, key in CASES[:2] + CASES[3:]:
        expected = tags[idempotency.partition(key, tenant, 5)]
        assert chooser.tag(route, tenant, key) == expected
        assert chooser.tag(route, tenant, key) == expected  # a repeat, the same one
