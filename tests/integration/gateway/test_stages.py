"""Where a sync request's time goes: each stage of its job, in metrics and events."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import RunningGateway, running_worker, wait_until
from tidegate.envelope import INLINE_RESULT_BYTES, Job, Reply
from tidegate.settings import Settings
from tidegate.stages import STAGES
from worker.handler import Handler


def stage_counts(registry: CollectorRegistry, route: str) -> dict[str, float]:
    """Observations per stage of the route's ``tidegate_job_stage_seconds``."""
    out: dict[str, float] = {}
    for family in registry.collect():
        if family.name != "tidegate_job_stage_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count") and sample.labels["route"] == route:
                out[sample.labels["stage"]] = sample.value
    return out


async def test_every_stage_of_a_sync_job_is_measured_and_kept_in_its_events(
    gateway: RunningGateway, relay_worker: Any
) -> None:
    async with relay_worker() as worker:
        for n in range(3):
            async with gateway.http.post(gateway.url("/orders"), data=b"%d" % n) as r:
                assert r.status == 201, await r.text()
                job_id = r.headers["Tidegate-Job"]
        # The answer can reach the client before the worker has read the
        # reply to its finish call (and observed the last stage): the job's
        # end is published by that very call.
        await wait_until(lambda: worker.consumer.processed == 3, what="the worker's three jobs")
        worker_stages = stage_counts(worker.consumer.metrics.registry, "orders")
    gateway_stages = stage_counts(gateway.gw.metrics.registry, "orders")
    assert worker_stages == {"queued": 3, "started": 3, "upstream": 3, "finished": 3}
    assert gateway_stages == {"notified": 3}
    assert set(worker_stages) | set(gateway_stages) == set(STAGES)
    async with gateway.http.get(gateway.url(f"/_tidegate/jobs/{job_id}/events")) as r:
        events = (await r.json())["events"]
    succeeded = next(e for e in events if e["type"] == "succeeded")
    assert float(succeeded["upstream_ms"]) > 0


@pytest.mark.parametrize(
    ("size", "reads"),
    [(0, 0), (100, 0), (INLINE_RESULT_BYTES, 0), (INLINE_RESULT_BYTES + 1, 1), (200_000, 1)],
)
async def test_a_small_result_comes_with_its_notification_a_large_one_is_read(
    settings: Settings, gateway: RunningGateway, size: int, reads: int
) -> None:
    """The answer is the same either way; only a result above
    INLINE_RESULT_BYTES costs the gateway a read."""
    body = bytes(range(256)) * (size // 256) + b"\n" * (size % 256)  # newlines and all bytes
    read: list[str] = []
    ended = gateway.gw.ledger.ended

    async def counted(job_id: str) -> Any:
        read.append(job_id)
        return await ended(job_id)

    gateway.gw.ledger.ended = counted  # type: ignore[method-assign]

    async def handle(job: Job) -> Reply:
        return Reply(207, (("X-Size", str(size)),), body)

    async with (
        running_worker(settings, "orders", Handler(handle)),
        gateway.http.post(gateway.url("/orders"), data=b"x") as r,
    ):
        assert r.status == 207
        assert r.headers["X-Size"] == str(size)
        assert await r.read() == body
    assert len(read) == reads
