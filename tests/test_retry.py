"""The retry table and the wait schedule, without waiting."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from segment_client import APIError, QueueFullError, RetryPolicy, TransportError
from segment_client._retry import parse_retry_after

RETRIED = [408, 410, 429, 460, 500, 502, 503, 504, 599]
FINAL = [400, 401, 403, 404, 413, 422, 501, 505]


@pytest.mark.parametrize("status", RETRIED)
def test_retried_statuses(status: int) -> None:
    assert RetryPolicy.is_retryable(APIError(status))


@pytest.mark.parametrize("status", FINAL)
def test_final_statuses(status: int) -> None:
    assert not RetryPolicy.is_retryable(APIError(status))


def test_transport_errors_are_retried_others_not() -> None:
    assert RetryPolicy.is_retryable(TransportError("reset"))
    assert not RetryPolicy.is_retryable(QueueFullError("full"))


@pytest.mark.parametrize(
    ("header", "expected"),
    [("5", 5.0), (" 2.5 ", 2.5), ("-3", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    now = dt.datetime(2024, 1, 1, 0, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2023 00:00:30 GMT", now) == 0.0


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(0.0, 1.0), (7.0, 7.0), (1000.0, 300.0), (None, None)]
)
def test_rate_limit_wait_is_clamped(retry_after: float | None, expected: float | None) -> None:
    assert RetryPolicy.rate_limit_wait(APIError(429, retry_after=retry_after)) == expected


def test_rate_limit_wait_only_for_429() -> None:
    assert RetryPolicy.rate_limit_wait(APIError(503, retry_after=5)) is None


def test_backoff_schedule_without_jitter() -> None:
    """Exponential from the base, capped."""
    waits = RetryPolicy(base_delay=0.5, max_delay=60, jitter=False).backoff_waits()
    assert [next(waits) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 32, 60, 60]


def test_backoff_full_jitter_stays_under_the_ceiling() -> None:
    waits = RetryPolicy(base_delay=0.5, max_delay=4).backoff_waits(random.Random(7))
    values = [next(waits) for _ in range(50)]
    ceilings = [0.5, 1, 2] + [4] * 47
    assert all(0 <= v <= c for v, c in zip(values, ceilings, strict=True))
    assert len(set(values)) == 50  # jittered, not constant
