"""Queries: a job as the job API shows it (projection, result, events, states).

Every query is a read, sent once more when its pooled connection turns out
to have been closed under it (``read_again_if_closed``): after a Redis
restart or failover the job API and a waiting sync request get the answer,
not a 503 or a 202 for a connection that sat idle through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tidegate.envelope import Reply
from tidegate.errors import JobNotFound
from tidegate.ledger.base import LedgerBase
from tidegate.ledger.client import read_again_if_closed, read_pipeline_again_if_closed, text


class Queries(LedgerBase):
    async def projection(self, job_id: str) -> dict[str, str]:
        """The job's current state; JobNotFound when unknown or expired."""
        _, keys = self._route(job_id)
        raw = await read_again_if_closed(
            "reading a job", lambda: self._redis.hgetall(keys.job(job_id))
        )
        if not raw:
            raise JobNotFound(f"no job {job_id}")
        return {text(k): text(v) for k, v in raw.items()}

    async def ended(self, job_id: str) -> tuple[dict[str, str], Reply | None]:
        """The job's projection and its stored response (None: none yet), in
        one round trip: what a sync request answers with once its job ends."""
        _, keys = self._route(job_id)

        def commands(pipe: Any) -> None:
            pipe.hgetall(keys.job(job_id))
            pipe.hgetall(keys.result(job_id))

        raw, stored = await read_pipeline_again_if_closed(
            self._redis, "reading a job's outcome", commands
        )
        if not raw:
            raise JobNotFound(f"no job {job_id}")
        projection = {text(k): text(v) for k, v in raw.items()}
        return projection, Reply.from_hash(stored) if stored else None

    async def states(self, job_ids: Sequence[str]) -> list[str | None]:
        """The states of many jobs in one round trip (None: unknown)."""
        if not job_ids:
            return []

        def commands(pipe: Any) -> None:
            for job_id in job_ids:
                pipe.hget(self._route(job_id)[1].job(job_id), "state")

        values = await read_pipeline_again_if_closed(self._redis, "reading job states", commands)
        return [text(v) if v is not None else None for v in values]

    async def result(self, job_id: str) -> Reply | None:
        """The stored response once the job has one, else None."""
        _, keys = self._route(job_id)
        raw: Any = await read_again_if_closed(
            "reading a result", lambda: self._redis.hgetall(keys.result(job_id))
        )
        return Reply.from_hash(raw) if raw else None

    async def events(self, job_id: str) -> list[dict[str, str]]:
        """The job's events, oldest first, each with its id and time."""
        projection = await self.projection(job_id)
        _, keys = self._route(job_id)
        ids = [i for i in projection.get("events", "").split(",") if i]

        def commands(pipe: Any) -> None:
            for event_id in ids:
                pipe.xrange(keys.events, event_id, event_id)

        found = await read_pipeline_again_if_closed(self._redis, "reading job events", commands)
        out = []
        for entries in found:
            for raw_id, fields in entries:
                event = {text(k): text(v) for k, v in fields.items()}
                event_id = text(raw_id)
                out.append({"id": event_id, "at_ms": event_id.split("-")[0], **event})
        return out
