"""Quota tokens on proxy routes, taken from Redis several at a time while plentiful.

A proxy route has no admission call to carry a tenant's quota check, so each
request would pay a Redis round trip of its own (``quota.lua``); under load
that wait is most of what a quota costs. A process therefore takes a few
tokens at once from a well-stocked bucket and spends them locally:

- **How many.** Each (route, tenant) aims at one Redis call per
  ``REFILL_EVERY_S``: the next lease asks for the tokens the last one held,
  scaled by that interval over how long they lasted, at most ``GROWTH``
  times the last and ``MOST`` in all. At a few requests per second that is
  one token per request, as without leases. While a lease call is on its way,
  other requests of the same key wait for it and spend from it (they would
  have waited as long for calls of their own); while a one-token call is on
  its way, they ask for one token each. Either way a burst of concurrent
  requests does not take a lease each.
- **Only from the surplus.** ``quota.lua`` gives more than the request's own
  token only from the part of the bucket above half its burst. A bucket
  below that, a quota that binds, gives one token per call, as many calls as
  tokens, whatever the gateways hold.
- **Never more than the bucket.** Tokens leave the shared bucket before they
  are spent, so the bucket and every lease together never hold more than
  the burst: no interval passes more than burst + rate x interval requests,
  however many gateways share the bucket.
- **Held briefly.** Tokens not spent within ``HOLD_S`` are dropped, not
  returned. That is the whole inexactness: a tenant can lose at most the
  unspent part of one lease per gateway per ``HOLD_S``, and only tokens its
  bucket had to spare when they were taken.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

REFILL_EVERY_S = 0.05
"""A busy key goes to Redis about this often."""
HOLD_S = 1.0
"""Leased tokens not spent within this long are dropped."""
GROWTH = 4
"""A lease asks for at most this many times the tokens of the last."""
MOST = 1000
"""Tokens one call asks for at most."""


@dataclass(slots=True)
class _Lease:
    tokens: int = 0
    """Held and not spent yet."""
    expires_s: float = 0.0
    last: int = 1
    """Tokens the last call took (the request's own included)."""
    last_at_s: float = -math.inf
    asking: int = 0
    """Tokens the call on its way asked for (0: none is)."""
    arrival: asyncio.Future[None] | None = None
    """Done when the lease call on its way has its answer (made on demand)."""


class QuotaLeases:
    """Local quota tokens per (route, tenant); ``clock`` is monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._leases: dict[tuple[str, str], _Lease] = {}

    def spend(self, key: tuple[str, str]) -> bool:
        """Spend a held token; False when none is held (ask Redis)."""
        lease = self._leases.get(key)
        if lease is None or lease.tokens <= 0:
            return False
        if self._clock() >= lease.expires_s:
            lease.tokens = 0
            return False
        lease.tokens -= 1
        return True

    def ask(self, key: tuple[str, str]) -> int:
        """Tokens to ask Redis for, the request's own included; 0: ask for one,
        a lease call of this key is on its way. Report the answer to
        ``taken`` or ``failed`` with the same number."""
        lease = self._leases.setdefault(key, _Lease())
        if lease.asking:
            return 0
        lasted_s = self._clock() - lease.last_at_s
        if lasted_s >= HOLD_S:
            lease.asking = 1
        else:
            scaled = lease.last * REFILL_EVERY_S / max(lasted_s, 1e-6)
            lease.asking = max(1, min(MOST, lease.last * GROWTH, math.ceil(round(scaled, 6))))
        return lease.asking

    def arrival(self, key: tuple[str, str]) -> asyncio.Future[None] | None:
        """Done when the lease call on its way is answered; None when no call
        for more than one token is on its way (ask Redis for one)."""
        lease = self._leases.get(key)
        if lease is None or lease.asking <= 1:
            return None
        if lease.arrival is None:
            lease.arrival = asyncio.get_running_loop().create_future()
        return lease.arrival

    def taken(self, key: tuple[str, str], asked: int, tokens: int) -> None:
        """Redis gave ``tokens`` to a call that ``ask`` sized ``asked``: the
        request spends one, the rest are held."""
        lease = self._leases.setdefault(key, _Lease())
        now = self._clock()
        if now >= lease.expires_s:
            lease.tokens = 0
        lease.tokens += tokens - 1
        lease.expires_s = now + HOLD_S
        if asked:  # the call that sizes the next one
            lease.last, lease.last_at_s = tokens, now
            self._answered(lease)

    def failed(self, key: tuple[str, str], asked: int) -> None:
        """The call that ``ask`` sized ``asked`` was refused or failed."""
        if asked:
            self._answered(self._leases.setdefault(key, _Lease()))

    @staticmethod
    def _answered(lease: _Lease) -> None:
        lease.asking = 0
        if lease.arrival is not None:
            if not lease.arrival.done():
                lease.arrival.set_result(None)
            lease.arrival = None

    def held(self, key: tuple[str, str]) -> int:
        """Tokens held and not expired."""
        lease = self._leases.get(key)
        if lease is None or self._clock() >= lease.expires_s:
            return 0
        return lease.tokens
