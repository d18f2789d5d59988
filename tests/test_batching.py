"""Batch sizes under a backlog, driven step by step (no consumer thread)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from segment_client import _consumer
from segment_client._batch import MAX_REQUEST_BYTES
from segment_client._consumer import BACKLOG_BATCH_CAP, Consumer
from segment_client._queue import MemoryQueue
from segment_client._retry import RetryPolicy
from segment_client.testing import RecordingTransport


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def consumer(transport: RecordingTransport) -> Iterator[Consumer]:
    consumer = Consumer(
        queue_factory=lambda: MemoryQueue(100_000), transport=transport, write_key="k",
        flush_at=100, flush_interval=60.0, policy=RetryPolicy(), on_error=None,
    )
    yield consumer
    assert consumer.close(5.0)


def fill(consumer: Consumer, count: int, size: int = 0) -> None:
    """Queue `count` messages straight into the queue (so no thread starts)."""
    pad = "x" * size
    for i in range(count):
        assert consumer.queue.put(json.dumps({"i": i, "pad": pad}).encode())


def step(consumer: Consumer) -> int:
    """Take and deliver one batch, as the consumer thread does; its size."""
    with consumer._delivery_lock:
        batch = consumer._take()
        if batch:
            consumer._deliver(batch, deadline=None)
    return len(batch)


def drain(consumer: Consumer) -> list[int]:
    sizes = []
    while size := step(consumer):
        sizes.append(size)
    return sizes


def test_cap_is_within_the_request_limits() -> None:
    assert 100 < BACKLOG_BATCH_CAP <= 2500


def test_no_backlog_sends_flush_at(consumer: Consumer, transport: RecordingTransport) -> None:
    fill(consumer, 100)
    assert drain(consumer) == [100]
    fill(consumer, 40)
    assert drain(consumer) == [40]
    assert [m["i"] for m in transport.messages] == [*range(100), *range(40)]


def test_backlog_drains_in_batches_up_to_the_cap(
    consumer: Consumer, transport: RecordingTransport
) -> None:
    cap = BACKLOG_BATCH_CAP
    fill(consumer, 2 * cap + 150)
    # All that waits, up to the cap; then 150 left: still more than flush_at, all at once.
    assert drain(consumer) == [cap, cap, 150]
    assert [m["i"] for m in transport.messages] == list(range(2 * cap + 150))
    assert consumer.stats().delivered == 2 * cap + 150
    assert consumer.stats().batches_sent == 3


def test_a_backlog_just_over_flush_at_goes_in_one_batch(consumer: Consumer) -> None:
    fill(consumer, 101)
    assert drain(consumer) == [101]


def test_flush_at_over_the_cap_wins(
    consumer: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_consumer, "BACKLOG_BATCH_CAP", 150)
    consumer.flush_at = 200
    fill(consumer, 450)
    assert drain(consumer) == [200, 200, 50]


def test_backlog_batches_stay_under_the_request_bytes(
    consumer: Consumer, transport: RecordingTransport
) -> None:
    # ~2 KB messages: the byte limit, not the cap, cuts each batch.
    fill(consumer, 600, size=2000)
    sizes = drain(consumer)
    assert sum(sizes) == 600
    per_request = MAX_REQUEST_BYTES // 2020
    assert sizes[0] in (per_request, per_request - 1)
    assert all(size <= per_request for size in sizes)
    assert len(sizes) == -(-600 // sizes[0])
