"""Handlers for bench/batch.py: the same trivial work, one job or many per call."""

from __future__ import annotations

import json
from typing import Any

from tidegate.envelope import Job


async def one(job: Job) -> Any:
    return {"quantity": json.loads(job.body)["quantity"]}


async def many(jobs: list[Job]) -> list[Any]:
    return [{"quantity": json.loads(job.body)["quantity"]} for job in jobs]
