"""Where a job is found: the job API's paths, named once."""

from __future__ import annotations

JOBS_PATH = "/_tidegate/jobs/"


def job_links(job_id: str) -> dict[str, str]:
    base = JOBS_PATH + job_id
    return {"self": base, "result": base + "/result", "events": base + "/events"}
