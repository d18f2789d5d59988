"""Cutting batches by count and bytes."""

from __future__ import annotations

import json

from segment_client._batch import (
    MAX_REQUEST_BYTES,
    body_overhead,
    build_body,
    count_fitting,
)


def test_count_limit() -> None:
    assert count_fitting([10] * 5, max_count=3, max_bytes=10_000) == 3
    assert count_fitting([10] * 2, max_count=3, max_bytes=10_000) == 2
    assert count_fitting([], max_count=3, max_bytes=10_000) == 0


def test_byte_limit_counts_commas() -> None:
    """n messages take their sizes plus n - 1 commas."""
    assert count_fitting([10, 10, 10], max_count=100, max_bytes=32) == 3
    assert count_fitting([10, 10, 10], max_count=100, max_bytes=31) == 2


def test_always_takes_one() -> None:
    assert count_fitting([500], max_count=10, max_bytes=100) == 1


def test_body_is_valid_and_overhead_exact() -> None:
    messages = [b'{"a":1}', b'{"b":"\xc3\xa9"}']
    body = build_body(messages, "2024-01-02T03:04:05.678Z", "key\"q")
    decoded = json.loads(body)
    assert decoded == {
        "batch": [{"a": 1}, {"b": "é"}],
        "sentAt": "2024-01-02T03:04:05.678Z",
        "writeKey": 'key"q',
    }
    payload = sum(map(len, messages)) + len(messages) - 1
    assert len(body) == payload + body_overhead('key"q')


def test_full_batch_stays_under_the_request_limit() -> None:
    message = b'{"x":"' + b"y" * 30_000 + b'"}'
    key = "k" * 40
    count = count_fitting([len(message)] * 100, 100, MAX_REQUEST_BYTES - body_overhead(key))
    body = build_body([message] * count, "2024-01-02T03:04:05.678Z", key)
    assert len(body) <= MAX_REQUEST_BYTES
    assert len(body) + len(message) + 1 > MAX_REQUEST_BYTES
