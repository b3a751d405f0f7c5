"""When to try again: which answers are retried, how long to wait, Retry-After parsing."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

__all__ = ["RETRY_STATUSES", "backoff_delay", "is_retryable_status", "parse_retry_after"]

RETRY_STATUSES = frozenset({429})


def is_retryable_status(status: int) -> bool:
    """429 and every 5xx are retried; other 4xx fail at once."""
    return status in RETRY_STATUSES or 500 <= status <= 599


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0.0, ceiling)
