"""Tenants: API keys, quotas, weights and priority classes."""

from __future__ import annotations

import re

from pydantic import Field, field_validator
from pydantic.dataclasses import dataclass

from tidegate.callback_urls import checked_prefixes
from tidegate.settings.base import STRICT, Priority, checked_name


@dataclass(frozen=True, config=STRICT)
class QuotaSettings:
    """A tenant's own token bucket, per route, always enforced."""

    rate_per_s: float = Field(gt=0)
    burst: int = Field(default=0, ge=0)
    """Requests allowed at once beyond the rate (default: one second of it)."""

    @property
    def bucket_size(self) -> int:
        """The bucket's capacity: ``burst``, or one second of the rate (at least 1)."""
        return self.burst or max(1, round(self.rate_per_s))


@dataclass(frozen=True, config=STRICT)
class TenantSettings:
    """A client of the gateway, known by its API key (stored hashed)."""

    name: str
    api_key_sha256: str
    """Hex SHA-256 of the key (``printf %s KEY | sha256sum``); the key itself is never stored."""
    weight: float = Field(default=1.0, gt=0)
    """Share of a throttled route's rate, relative to the other active tenants."""
    quota: QuotaSettings | None = None
    priority: Priority = "normal"
    """Highest class this tenant's requests get (a request may ask for a lower one)."""
    callback_allow: tuple[str, ...] = ()
    """URL prefixes this tenant's completion callbacks may name, within a
    route's ``callback.allow``; none: the tenant may ask for no callback.
    Another tenant's receivers are out of reach even under the route's list."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return checked_name(value)

    @field_validator("callback_allow")
    @classmethod
    def _callback_allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return checked_prefixes(value)

    @field_validator("api_key_sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be 64 lowercase hex characters (a SHA-256 digest)")
        return value
