"""Completion callbacks in Redis: the due set, claims, and how each ended.

A callback falls due in the same atomic call that ends its job (``fold.lua``
adds "job \\n state" to the partition's ``callbacks`` set), so a job cannot end
without its callback on record, whatever happens to the process that ended
it. Deliverers (``worker.callback_delivery``) claim what is due: the claim pushes the
callback past a lease, so a deliverer that dies mid-delivery leaves it to be
claimed again once the lease has passed; that is how due callbacks that
were never delivered are reconciled. A failed attempt moves it to its next
retry; a delivery, or giving up, ends it with ``callback_delivered`` or
``callback_failed`` in the job's event log.
"""

from __future__ import annotations

from tidegate.keys import RouteKeys, parts_of
from tidegate.ledger.base import LedgerBase
from tidegate.ledger.calls import (
    ClaimCallbacks,
    Claimed,
    DeferCallback,
    DueCallback,
    EndCallback,
    Settled,
    unix_ms,
)
from tidegate.ledger.client import redis_errors


class Callbacks(LedgerBase):
    async def claim_callbacks(
        self, keys: RouteKeys, *, lease_s: float, most: int, now_s: float | None = None
    ) -> Claimed:
        """Up to ``most`` due callbacks of a partition, each claimed for ``lease_s``."""
        claim = ClaimCallbacks(
            route=keys, now_ms=unix_ms(now_s), lease_ms=int(lease_s * 1000), most=most
        )
        with redis_errors("claiming due callbacks"):
            return await self.runner.run(claim)

    async def retry_callback(self, due: DueCallback, at_s: float) -> None:
        """Due again at ``at_s`` (unix s); nothing when it was ended meanwhile."""
        _, keys = self._route(due.job_id)
        with redis_errors("scheduling a callback's retry"):
            await self._redis.zadd(keys.callbacks, {due.member: int(at_s * 1000)}, xx=True)

    async def defer_callback(self, due: DueCallback, at_s: float) -> bool:
        """Due again at ``at_s`` (unix s) without its claim counting as an
        attempt: the deliverer had no slot for it (``worker.callback_delivery``'s
        fairness). False when it had ended meanwhile."""
        _, keys = self._route(due.job_id)
        call = DeferCallback(
            route=keys,
            member=due.member,
            due_ms=int(at_s * 1000),
            attempt=due.attempt,
            first_due_ms=due.first_due_ms,
        )
        with redis_errors("deferring a callback"):
            return await self.runner.run(call)

    async def end_callback(self, due: DueCallback, *, delivered: bool, detail: str) -> Settled:
        """Record how a callback ended (``detail``: the receiver's status, or
        the last error); ok False when another deliverer ended it first or the
        job is gone."""
        route, keys = self._route(due.job_id)
        with redis_errors("recording a callback's end"):
            return await self.runner.run(
                EndCallback(
                    route=keys,
                    job_id=due.job_id,
                    ttl_ms=route.result_ttl_s * 1000,
                    member=due.member,
                    event="callback_delivered" if delivered else "callback_failed",
                    for_state=due.state,
                    attempts=due.attempt,
                    detail_name="status" if delivered else "error",
                    detail=detail,
                )
            )

    async def due_callbacks(self, route_name: str) -> int:
        """Callbacks of a route not yet delivered nor given up (claimed included)."""
        with redis_errors("counting due callbacks"):
            counts = [
                await self._redis.zcard(keys.callbacks)
                for keys in parts_of(self.routes[route_name])
            ]
        return sum(int(n) for n in counts)
