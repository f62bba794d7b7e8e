"""Admission: coalesce concurrent admissions into one Redis round trip.

Admission runs the ``admit`` Lua script (idempotency check, XADD of the
envelope, the ``accepted`` event and its projection). Awaiting a call per
request would cost a round trip per request; instead callers queue their job
and a single flusher task sends whatever has queued up, one script call per
route for the whole batch, all routes in one pipeline, then the next batch.
Under light load a batch holds one job and adds no delay (no timer); under
heavy load batches grow by themselves while the previous one is in flight, up
to ``batch_max_size``. One script call per batch, not per job, matters: the
client-side cost of encoding a command and parsing its reply dominates.

One bad request fails alone: the gateway checks every header before a request
joins a batch, and should anything in a batch still fail to encode (nothing
has been sent then), the batch is sifted: each admission is encoded on its
own, those that fail are refused (400), and the rest are sent.

When Redis is unreachable the whole batch fails with ``RedisUnavailable``,
and for ``breaker_s`` afterwards admissions fail at once without another
connection attempt, so clients get a fast 503 instead of piling up behind
connect timeouts.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from gateway.rejections import Rejection
from tidegate import scripts
from tidegate.coalesce import Coalescer
from tidegate.errors import NotReplicated
from tidegate.ledger import Admission, Admitted, admit_call, admit_results
from tidegate.settings import RouteSettings

_Item = tuple[RouteSettings, Admission]


class AdmissionBatcher(Coalescer[_Item, Admitted]):
    """Flushes queued admissions as one admit call per route, all in one pipeline."""

    def __init__(self, redis: Redis, *, batch_max_size: int, breaker_s: float = 0.5) -> None:
        super().__init__(max_batch=batch_max_size, breaker_s=breaker_s, name="admission")
        self._redis = redis

    async def admit(self, route: RouteSettings, admission: Admission) -> Admitted:
        """Admit one job; raises RedisUnavailable, NotReplicated, IdempotencyConflict
        or Refused (throttle or quota)."""
        return await self.submit((route, admission))

    async def flush(self, items: Sequence[_Item]) -> list[Admitted | BaseException]:
        try:
            return await self._send(items)
        except (UnicodeEncodeError, TypeError, ValueError):
            pass  # raised while encoding, before anything was sent: sift the batch
        out: list[Admitted | BaseException] = []
        good: list[int] = []
        for index, (route, admission) in enumerate(items):
            try:
                _, keys, args = admit_call(route, [admission])
                scripts.pack([*keys, *args])
            except (UnicodeEncodeError, TypeError, ValueError):
                out.append(_unencodable(route.name))
            else:
                out.append(RuntimeError("unanswered"))
                good.append(index)
        if good:
            sent = await self._send([items[i] for i in good])
            for i, result in zip(good, sent, strict=True):
                out[i] = result
        return out

    async def _send(self, items: Sequence[_Item]) -> list[Admitted | BaseException]:
        groups: dict[str, list[int]] = {}
        for index, (route, _) in enumerate(items):
            groups.setdefault(route.name, []).append(index)
        routes = [items[indexes[0]][0] for indexes in groups.values()]
        calls = [
            admit_call(route, [items[i][1] for i in indexes])
            for route, indexes in zip(routes, groups.values(), strict=True)
        ]
        need, timeout_s = max((r.replicas_ack, r.replicas_ack_timeout_s) for r in routes)
        replies = await scripts.run_pipeline(
            self._redis, calls, wait=(need, int(timeout_s * 1000)) if need else None
        )
        acked = replies.pop() if need else 0
        out: list[Admitted | BaseException] = [RuntimeError("unanswered")] * len(items)
        for route, indexes, reply in zip(routes, groups.values(), replies, strict=True):
            if (
                route.replicas_ack
                and acked < route.replicas_ack
                and not isinstance(reply, Exception)
            ):
                reply = NotReplicated(
                    f"{acked} of {route.replicas_ack} Redis replica(s) acknowledged the "
                    "admission in time"
                )
            results = (
                [reply] * len(indexes) if isinstance(reply, Exception) else admit_results(reply)
            )
            for i, result in zip(indexes, results, strict=True):
                out[i] = result
        return out


def _unencodable(route: str) -> Rejection:
    return Rejection(
        "bad-header",
        "Request cannot be stored",
        "A part of the request (a header, the path or a key) cannot be encoded as UTF-8.",
        route=route,
    )
