"""The relay executor: replay a job's request against an unchanged service.

The upstream sees the original method, path, query, headers and body, plus
``Idempotency-Key: <job id>`` (the same on every attempt, so the service can
make its effect happen once) and ``Tidegate-Attempt``. Its answer is the
job's result, status and all. Which outcomes are retried:

- no answer (refused, reset, timed out): retryable;
- 5xx and 429: retryable, the answer kept for the record;
- anything else, 4xx included, is definitive: retrying cannot change it.
"""

from __future__ import annotations

import base64
import json
import time

import aiohttp

from tidegate.backoff import parse_retry_after
from tidegate.envelope import Failure, Job, Reply
from tidegate.http import strip_headers

_DROP_REQUEST = ("host", "content-length", "idempotency-key", "tidegate-attempt")
_DROP_RESPONSE = ("content-length", "date", "server")


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status == 429


class Relay:
    """Calls ``upstream`` for each job; one connection pool per worker.

    Compensation (when ``compensate_path`` is set): a POST to that path on the
    upstream with a JSON body ``{"job", "error", "request": {"method", "path",
    "query", "headers", "body_base64"}}`` and ``Idempotency-Key: <job
    id>:compensate``; it is retried until the upstream answers definitively,
    so the endpoint must be idempotent (the key makes that easy).
    """

    def __init__(self, upstream: str, timeout_s: float, compensate_path: str | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.compensate_path = compensate_path
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._http = aiohttp.ClientSession(auto_decompress=False)

    async def close(self) -> None:
        if self._http:
            await self._http.close()

    async def __call__(self, job: Job) -> Reply | Failure:
        assert self._http is not None, "Relay.open() first"
        headers = strip_headers(job.headers, _DROP_REQUEST)
        headers += [("Idempotency-Key", job.id), ("Tidegate-Attempt", str(job.attempt))]
        url = self.upstream + job.path + (f"?{job.query}" if job.query else "")
        try:
            async with self._http.request(
                job.method,
                url,
                headers=headers,
                data=job.body,
                allow_redirects=False,
                timeout=self.timeout,
            ) as response:
                body = await response.read()
                reply = Reply(
                    status=response.status,
                    headers=tuple(strip_headers(response.headers.items(), _DROP_RESPONSE)),
                    body=body,
                )
        except TimeoutError:
            return Failure(f"upstream {self.upstream} timed out after {self.timeout.total}s", True)
        except aiohttp.ClientError as e:
            return Failure(f"upstream {self.upstream} unreachable: {e!r}", True)
        if is_retryable_status(reply.status):
            wait_s = parse_retry_after(response.headers.get("Retry-After"), time.time())
            return Failure(f"upstream answered {reply.status}", True, reply, wait_s)
        return reply

    async def compensate(self, job: Job, error: str) -> Reply | Failure | None:
        if not self.compensate_path:
            return None
        assert self._http is not None, "Relay.open() first"
        payload = {
            "job": job.id,
            "error": error,
            "request": {
                "method": job.method,
                "path": job.path,
                "query": job.query,
                "headers": [list(pair) for pair in job.headers],
                "body_base64": base64.b64encode(job.body).decode(),
            },
        }
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": f"{job.id}:compensate",
        }
        try:
            async with self._http.post(
                self.upstream + self.compensate_path,
                data=json.dumps(payload).encode(),
                headers=headers,
                timeout=self.timeout,
            ) as response:
                reply = Reply(response.status, (), await response.read())
        except TimeoutError:
            return Failure(f"compensation at {self.compensate_path} timed out", True)
        except aiohttp.ClientError as e:
            return Failure(f"compensation at {self.compensate_path} unreachable: {e!r}", True)
        if is_retryable_status(reply.status):
            return Failure(f"compensation answered {reply.status}", True, reply)
        return reply
