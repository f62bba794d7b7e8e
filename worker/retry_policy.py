"""The worker's retry policy: whether a failed attempt is tried again, and when.

A retryable failure with attempts left is parked until its backoff has
passed (exponential with jitter, or the upstream's Retry-After when longer;
``tidegate.backoff``); any other failure is final, and a final failure
without an upstream answer stores a problem+json 502 as the job's result, so
a client redeeming its voucher reads why. The ledger records the decision
(``tidegate.ledger.Outcome``) in one atomic call.
"""

from __future__ import annotations

import json
import time

from tidegate.backoff import backoff_s
from tidegate.envelope import Failure, Job, Reply
from tidegate.ledger import Outcome
from tidegate.settings import WorkerSettings


def settle(
    job: Job, outcome: Reply | Failure, settings: WorkerSettings, *, now_s: float | None = None
) -> Outcome:
    """The outcome to record for the attempt ``job.attempt`` that ended so."""
    if isinstance(outcome, Reply):
        return Outcome(outcome)
    if outcome.retryable and job.attempt < settings.max_attempts:
        delay_s = backoff_s(
            job.attempt, settings.backoff_base_s, settings.backoff_max_s, outcome.retry_after_s
        )
        due_s = (time.time() if now_s is None else now_s) + delay_s
        return Outcome(outcome.reply, outcome.error, retry_due_ms=int(due_s * 1000))
    return Outcome(outcome.reply or failure_reply(job, outcome), outcome.error)


def failure_reply(job: Job, failure: Failure) -> Reply:
    """The result stored when a job finally fails without an upstream answer."""
    body = {
        "type": "https://tidegate.io/problems/job-failed",
        "title": "The job failed",
        "status": 502,
        "detail": failure.error,
        "job": job.id,
        "attempts": job.attempt,
    }
    return Reply(
        status=502,
        headers=(("Content-Type", "application/problem+json"),),
        body=json.dumps(body).encode(),
    )
