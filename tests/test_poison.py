"""Poison isolation: one message a collector refuses never holds the others back."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from segment_client import (
    APIError,
    Client,
    ConnectionDropped,
    DeliveryError,
    MemoryQueue,
    MessageQueue,
)
from segment_client._json import loads
from segment_client.collector import Collector

MESSAGES = 1000
POISON = 537
FAST = {"retry_base_delay": 0.0, "retry_max_delay": 0.0}


class Refusing:
    """Delivers a batch unless it holds the poison message: then 400, or a drop."""

    def __init__(self, drop: bool = False) -> None:
        self.drop = drop
        self.attempts: list[int] = []
        self.delivered: list[int] = []

    def send(
        self, batch: Sequence[bytes], *, retry_count: int = 0, timeout: float | None = None
    ) -> None:
        self.attempts.append(len(batch))
        numbers = [loads(data)["properties"]["i"] for data in batch]
        if POISON in numbers:
            if self.drop:
                raise ConnectionDropped("RemoteDisconnected: closed without an answer")
            raise APIError(400, '{"error": "invalid message at batch[3]"}')
        self.delivered.extend(numbers)

    def close(self) -> None:
        pass


class DeadLetters(MemoryQueue):
    def __init__(self) -> None:
        super().__init__(10_000)
        self.dead: list[tuple[bytes, DeliveryError]] = []

    def dead_letter(self, data: bytes, error: DeliveryError) -> None:
        self.dead.append((data, error))


def _run(transport: Refusing, **options: Any) -> tuple[Client, DeadLetters, list[Any]]:
    queue = DeadLetters()
    errors: list[tuple[DeliveryError, list[dict[str, Any]]]] = []

    def factory() -> MessageQueue:
        return queue

    client = Client(
        "wk", transport=transport, queue=factory, flush_at=100, flush_interval=60,
        on_error=lambda error, messages: errors.append((error, messages)), **options,
    )
    for i in range(MESSAGES):
        client.track("user-1", "E", {"i": i})
    # Its result depends on whether the poison failed before the call or during it.
    client.close_and_flush(30)
    return client, queue, errors


def test_a_400_poison_is_isolated_in_log_n_requests() -> None:
    transport = Refusing()
    client, queue, errors = _run(transport)
    stats = client.stats()
    assert stats.delivered == MESSAGES - 1 and stats.failed == 1
    assert transport.delivered == [i for i in range(MESSAGES) if i != POISON]  # in order
    [(error, messages)] = errors
    assert isinstance(error, APIError) and error.status == 400
    assert "batch[3]" in error.body
    assert [m["properties"]["i"] for m in messages] == [POISON]
    [(data, dead_error)] = queue.dead
    assert loads(data)["properties"]["i"] == POISON and dead_error is error
    extra = len(transport.attempts) - MESSAGES // 100
    assert 0 < extra <= 2 * math.ceil(math.log2(100))


def test_a_connection_dropped_on_every_attempt_is_bisected() -> None:
    transport = Refusing(drop=True)
    client, queue, errors = _run(transport, max_retries=2, **FAST)
    stats = client.stats()
    assert stats.delivered == MESSAGES - 1 and stats.failed == 1
    assert transport.delivered == [i for i in range(MESSAGES) if i != POISON]
    [(error, messages)] = errors
    assert isinstance(error, ConnectionDropped)
    assert [m["properties"]["i"] for m in messages] == [POISON]
    assert len(queue.dead) == 1
    # The whole batch used its retries once (3 attempts); the bisection retries nothing.
    extra = len(transport.attempts) - MESSAGES // 100
    assert 2 < extra <= 2 + 2 * math.ceil(math.log2(100))


def test_the_collector_refusing_one_message() -> None:
    """The real collector in strict mode answers 400 to a batch holding a bad message."""
    errors: list[tuple[DeliveryError, list[dict[str, Any]]]] = []
    with Collector(strict=True) as collector:
        client = Client(
            "wk", host=collector.url, flush_at=100, flush_interval=60,
            on_error=lambda error, messages: errors.append((error, messages)),
        )

        def corrupt(message: dict[str, Any]) -> dict[str, Any]:
            if message["properties"]["i"] == POISON:
                message["timestamp"] = "not a time"
            return message

        client.add_middleware(corrupt)
        for i in range(MESSAGES):
            client.track("user-1", "E", {"i": i})
        assert client.close_and_flush(60) is False
        stored = [m["properties"]["i"] for m in collector.messages()]
    assert sorted(stored) == [i for i in range(MESSAGES) if i != POISON]
    stats = client.stats()
    assert stats.delivered == MESSAGES - 1 and stats.failed == 1
    [(error, messages)] = errors
    assert isinstance(error, APIError) and error.status == 400
    assert "timestamp" in error.body
    assert [m["properties"]["i"] for m in messages] == [POISON]
