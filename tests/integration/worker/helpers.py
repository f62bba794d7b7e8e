"""What the worker tests share: a job to admit, waiting for its final state,
a short visibility timeout.
"""

from __future__ import annotations

from tests.conftest import wait_until
from tidegate.envelope import Job
from tidegate.keys import new_job_id
from tidegate.ledger import Ledger
from tidegate.settings import Settings


def job_for(route: str, path: str, body: bytes = b"x") -> Job:
    return Job(id=new_job_id(route), route=route, method="POST", path=path, body=body)


async def final_state(ledger: Ledger, job_id: str) -> dict[str, str]:
    async def ended() -> bool:
        return (await ledger.projection(job_id))["state"] in ("succeeded", "dead_lettered")

    await wait_until(ended, what=f"job {job_id} to end")
    return await ledger.projection(job_id)


def with_visibility(settings: Settings, seconds: float) -> Settings:
    route = settings.route("orders")
    worker = route.worker.__class__(**{**route.worker.__dict__, "visibility_timeout_s": seconds})
    routes = tuple(
        r if r.name != "orders" else r.__class__(**{**r.__dict__, "worker": worker})
        for r in settings.routes
    )
    return settings.__class__(redis=settings.redis, gateway=settings.gateway, routes=routes)
