"""The handler of bench/retry_latency.py: each job fails its first attempt.

Usage: tidegate worker ... --app retry_app:fail_once (bench/ on PYTHONPATH)
"""

from __future__ import annotations

from tidegate.envelope import Job


async def fail_once(job: Job) -> bytes:
    if job.attempt == 1:
        raise RuntimeError("the first attempt fails")
    return b"{}"
