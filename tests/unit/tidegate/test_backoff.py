"""Retry delays: exponential with jitter, and the upstream's Retry-After."""

from __future__ import annotations

import random

from tidegate.backoff import backoff_s, parse_retry_after


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    rand = random.Random(7)
    delays = [backoff_s(n, 0.5, 60.0, rand=rand) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(60.0, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_s(1, 0.5, 60.0, retry_after_s=120.0) == 120.0
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 1445412480.0) == 10.0
    assert parse_retry_after("soon", 0.0) is None
