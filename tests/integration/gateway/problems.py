"""Reading problem+json answers in the gateway tests."""

from __future__ import annotations

from typing import Any

import aiohttp

PROBLEM = "application/problem+json"


async def problem_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json(content_type=PROBLEM)
    assert body["status"] == response.status
    assert body["type"].startswith("https://tidegate.io/problems/")
    return body
