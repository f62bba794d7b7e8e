"""What a log line is about: the route and the job of the task that logs it.

Context variables, so every task carries its own: a worker sets them for the
task of each job, the gateway for each request once its route and job are
known, the scaler for each route's control loop. The JSON log format
(``shell.logs``) adds them to every line logged within.
"""

from __future__ import annotations

from contextvars import ContextVar

ROUTE: ContextVar[str | None] = ContextVar("tidegate_route", default=None)
JOB: ContextVar[str | None] = ContextVar("tidegate_job", default=None)
