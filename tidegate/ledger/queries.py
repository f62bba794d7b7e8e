"""Queries: a job as the job API shows it (projection, result, events, states)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tidegate.envelope import Reply
from tidegate.errors import JobNotFound
from tidegate.ledger.base import LedgerBase
from tidegate.ledger.client import redis_errors, text


class Queries(LedgerBase):
    async def projection(self, job_id: str) -> dict[str, str]:
        """The job's current state; JobNotFound when unknown or expired."""
        _, keys = self._route(job_id)
        with redis_errors("reading a job"):
            raw = await self._redis.hgetall(keys.job(job_id))
        if not raw:
            raise JobNotFound(f"no job {job_id}")
        return {text(k): text(v) for k, v in raw.items()}

    async def ended(self, job_id: str) -> tuple[dict[str, str], Reply | None]:
        """The job's projection and its stored response (None: none yet), in
        one round trip: what a sync request answers with once its job ends."""
        _, keys = self._route(job_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(keys.job(job_id))
        pipe.hgetall(keys.result(job_id))
        with redis_errors("reading a job's outcome"):
            raw, stored = await pipe.execute()
        if not raw:
            raise JobNotFound(f"no job {job_id}")
        projection = {text(k): text(v) for k, v in raw.items()}
        return projection, Reply.from_hash(stored) if stored else None

    async def states(self, job_ids: Sequence[str]) -> list[str | None]:
        """The states of many jobs in one round trip (None: unknown)."""
        if not job_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self._route(job_id)[1].job(job_id), "state")
        with redis_errors("reading job states"):
            values = await pipe.execute()
        return [text(v) if v is not None else None for v in values]

    async def result(self, job_id: str) -> Reply | None:
        """The stored response once the job has one, else None."""
        _, keys = self._route(job_id)
        with redis_errors("reading a result"):
            raw: Any = await self._redis.hgetall(keys.result(job_id))
        return Reply.from_hash(raw) if raw else None

    async def events(self, job_id: str) -> list[dict[str, str]]:
        """The job's events, oldest first, each with its id and time."""
        projection = await self.projection(job_id)
        _, keys = self._route(job_id)
        ids = [i for i in projection.get("events", "").split(",") if i]
        pipe = self._redis.pipeline(transaction=False)
        for event_id in ids:
            pipe.xrange(keys.events, event_id, event_id)
        with redis_errors("reading job events"):
            found = await pipe.execute()
        out = []
        for entries in found:
            for raw_id, fields in entries:
                event = {text(k): text(v) for k, v in fields.items()}
                event_id = text(raw_id)
                out.append({"id": event_id, "at_ms": event_id.split("-")[0], **event})
        return out
