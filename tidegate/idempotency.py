"""A client's Idempotency-Key, scoped to its tenant: the one pairing both the
partition and the record of a keyed job are found by.

A key belongs to a tenant: another tenant's equal key is another job, so one
tenant can neither redeem nor probe another's keys. ``scoped`` is that
pairing, computed here once; ``digest`` is how the record stores it (hashed:
a client's key may carry meaning of its own), ``partition`` where a keyed
job goes on a partitioned route (so a repeat always meets the first record).
"""

from __future__ import annotations

import hashlib
import zlib

_NO_TENANT_CRC = zlib.crc32(b"\n")
"""Partitions were always chosen from ``tenant + "\\n" + key``, the tenant
empty included, while records were stored by the key alone without tenants:
seeding the CRC with the newline keeps every key in the partition it had, so
a retry across an upgrade still meets its record."""


def scoped(key: str, tenant: str = "") -> bytes:
    """The key within its tenant (the key alone where there are no tenants).
    A key that is not UTF-8 raises ``UnicodeEncodeError`` (the caller refuses it)."""
    return (f"{tenant}\n{key}" if tenant else key).encode()


def digest(key: str, tenant: str = "") -> str:
    """The record's name for the key (SHA-256 of ``scoped``, hex)."""
    return hashlib.sha256(scoped(key, tenant)).hexdigest()


def partition(key: str, tenant: str, partitions: int) -> int:
    """Which of ``partitions`` a keyed job goes to (CRC-32 of ``scoped``)."""
    return zlib.crc32(scoped(key, tenant), 0 if tenant else _NO_TENANT_CRC) % partitions
