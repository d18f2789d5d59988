"""Retry policy and wait schedule: which failures are retried, and how long to wait.

The only module that imports `backoff`: it supplies the exponential generator and the
full jitter. It is imported when the first wait is computed (backoff imports asyncio,
which would otherwise be part of every `import segment_client`). Waiting itself is not
done here: the consumer waits on an Event, so a close can interrupt any wait.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass

from ._exceptions import APIError, DeliveryError, TransportError

__all__ = ["RetryPolicy", "parse_http_date", "parse_retry_after"]

# Retry-After is honoured within these bounds (DESIGN.md section 5).
MIN_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 300.0


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = parse_http_date(value)
    if when is None:
        return None
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, when - now.timestamp())


def parse_http_date(value: str | None) -> float | None:
    """Epoch seconds of an HTTP date (`Retry-After`, `Date`), or None when unreadable."""
    if not value:
        return None
    import email.utils  # only when a server sends a date: it imports much of `email`

    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # HTTP dates are GMT; a naive result (e.g. two Date headers joined by a proxy)
        # must not be read in the host's local time zone.
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


@dataclass(frozen=True)
class RetryPolicy:
    """What is retried and how long to wait. Immutable; safe to share between threads.

    Attributes:
        max_retries: retries after the first attempt (attempts = max_retries + 1).
        base_delay: the first backoff ceiling in seconds; it doubles each retry.
        max_delay: the cap on one backoff wait.
        rate_limit_budget: total seconds one batch may spend waiting on 429 Retry-After.
        jitter: full jitter (uniform in 0..ceiling) when True; the ceiling itself when False.
    """

    max_retries: int = 10
    base_delay: float = 0.5
    max_delay: float = 60.0
    rate_limit_budget: float = 600.0
    jitter: bool = True

    @staticmethod
    def is_retryable(error: DeliveryError) -> bool:
        """Connection problems and timeouts, 408/410/429/460, 5xx but 501/505."""
        if isinstance(error, APIError):
            return error.retryable
        return isinstance(error, TransportError)

    @staticmethod
    def rate_limit_wait(error: DeliveryError) -> float | None:
        """The wait a 429 with Retry-After asks for, clamped to 1..300 s; else None."""
        if isinstance(error, APIError) and error.status == 429 and error.retry_after is not None:
            return min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, error.retry_after))
        return None

    def backoff_waits(self, rng: random.Random | None = None) -> Iterator[float]:
        """An endless schedule of waits for one batch: exponential, capped, jittered."""
        # Runs at the first next(), i.e. the first retry: a batch delivered at once never
        # imports backoff. Once imported, this is a dictionary lookup per retried batch.
        import backoff

        ceilings = backoff.expo(base=2, factor=self.base_delay, max_value=self.max_delay)
        next(ceilings)  # backoff's generators yield None first (they are primed by send)
        for ceiling in ceilings:
            if not self.jitter:
                yield ceiling
            elif rng is None:
                yield backoff.full_jitter(ceiling)
            else:  # a seeded generator, for repeatable schedules in tests
                yield rng.uniform(0.0, ceiling)
