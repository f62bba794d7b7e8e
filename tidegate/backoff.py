"""Delay between attempts: exponential, capped, with jitter, honouring Retry-After.

``delay = uniform(0.5, 1) * min(max_s, base_s * 2 ** (attempt - 1))``: the
jitter spreads retries of jobs that failed together (an upstream outage) so
they do not return together; half of the delay is kept so that a retry is
never immediate. An upstream's Retry-After is a floor, and may exceed max_s:
the upstream knows best when it can take work again.
"""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime


def backoff_s(
    attempt: int,
    base_s: float,
    max_s: float,
    retry_after_s: float | None = None,
    rand: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    delay: float = ceiling * (rand or random).uniform(0.5, 1.0)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s)
