"""Delivery through the consumer: batching, retries, failures, flush and close."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from segment_client import (
    APIError,
    Client,
    ClientClosedError,
    DeliveryError,
    QueueFullError,
    TransportError,
)
from segment_client.testing import RecordingTransport
from tests._support.clock import DEADLINE_MARGIN_S, FakeClock

FAST = {"retry_base_delay": 0.0, "retry_max_delay": 0.0}


class Errors:
    """An on_error sink that records (error, messages) pairs."""

    def __init__(self) -> None:
        self.calls: list[tuple[DeliveryError, list[dict[str, Any]]]] = []
        self.lock = threading.Lock()

    def __call__(self, error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        with self.lock:
            self.calls.append((error, messages))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m for _, batch in self.calls for m in batch]


MakeClient = Callable[..., Client]


class TestBatching:
    def test_flush_at_sends_full_batches(
        self, make_client: MakeClient, transport: RecordingTransport
    ) -> None:
        """A batch goes out when it holds flush_at messages, before the interval."""
        client = make_client(flush_at=10, flush_interval=3600)
        for i in range(10):
            client.track("u", f"E{i}")
        assert transport.wait_for_messages(10)
        assert [len(b) for b in transport.batches] == [10]
        for i in range(10, 25):
            client.track("u", f"E{i}")
        assert client.flush(5)
        # Under a backlog a batch may carry more than flush_at (tests/test_batching.py).
        assert sum(len(b) for b in transport.batches) == 25
        assert [m["event"] for m in transport.messages] == [f"E{i}" for i in range(25)]

    def test_interval_sends_partial_batch(
        self, make_client: MakeClient, transport: RecordingTransport
    ) -> None:
        """A partial batch goes out flush_interval after its first message, unflushed."""
        client = make_client(flush_at=100, flush_interval=0.05)
        client.track("u", "E")
        assert transport.wait_for_messages(1, timeout=5)
        assert client.stats().delivered == 1

    def test_byte_limit_cuts_batches(
        self, make_client: MakeClient, transport: RecordingTransport
    ) -> None:
        """Batches are cut to stay under the 500 KB request limit."""
        client = make_client(flush_at=2500, flush_interval=3600)
        for _ in range(40):
            client.track("u", "E", {"blob": "x" * 30_000})
        assert client.flush(10)
        sizes = [len(b) for b in transport.batches]
        assert sum(sizes) == 40
        assert len(sizes) >= 3
        assert all(n <= 16 for n in sizes)


class TestRetries:
    def test_retry_then_success_keeps_message_id(self, make_client: MakeClient) -> None:
        transport = RecordingTransport([503, TransportError("reset"), None])
        client = make_client(transport=transport, **FAST)
        mid = client.track("u", "E")
        assert client.flush(5)
        assert transport.attempts == [(1, 0), (1, 1), (1, 2)]
        assert [m["messageId"] for m in transport.messages] == [mid]
        stats = client.stats()
        assert (stats.delivered, stats.failed, stats.retried) == (1, 0, 2)

    def test_retries_exhausted_reports(self, make_client: MakeClient) -> None:
        """After max_retries the batch is reported once, with the final error."""
        errors = Errors()
        transport = RecordingTransport(fail_always=500)
        client = make_client(transport=transport, max_retries=3, on_error=errors, **FAST)
        ids = {client.track("u", f"E{i}") for i in range(3)}
        assert client.flush(5) is False
        assert len(transport.attempts) == 4
        [(error, messages)] = errors.calls
        assert isinstance(error, APIError) and error.status == 500
        assert {m["messageId"] for m in messages} == ids
        stats = client.stats()
        assert (stats.delivered, stats.failed, stats.queued) == (0, 3, 3)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 501, 505])
    def test_final_status_not_retried(self, make_client: MakeClient, status: int) -> None:
        errors = Errors()
        transport = RecordingTransport([status])
        client = make_client(transport=transport, on_error=errors, **FAST)
        client.track("u", "E")
        assert client.flush(5) is False
        assert len(transport.attempts) == 1
        assert errors.calls[0][0].status == status  # type: ignore[attr-defined]
        assert client.stats().failed == 1

    def test_413_splits_in_half(self, make_client: MakeClient) -> None:
        """A 413 splits the batch and sends each half; all arrive in order."""
        transport = RecordingTransport([413, 413])
        client = make_client(transport=transport, flush_at=8, flush_interval=3600, **FAST)
        for i in range(8):
            client.track("u", f"E{i}")
        assert client.flush(5)
        assert [n for n, _ in transport.attempts] == [8, 4, 2, 2, 4]
        assert [m["event"] for m in transport.messages] == [f"E{i}" for i in range(8)]

    def test_413_on_single_message_reports(self, make_client: MakeClient) -> None:
        errors = Errors()
        transport = RecordingTransport([413])
        client = make_client(transport=transport, on_error=errors, **FAST)
        client.track("u", "E")
        assert client.flush(5) is False
        assert len(errors.messages) == 1

    def test_retry_after_pauses_without_using_a_retry(self, make_client: MakeClient) -> None:
        """429 + Retry-After waits and does not count against max_retries."""
        transport = RecordingTransport([APIError(429, retry_after=0.0)] * 2)
        client = make_client(transport=transport, max_retries=0, **FAST)
        clock = FakeClock().install(client)
        client.track("u", "E")
        assert client.flush(10)
        # Retry-After is clamped to at least 1 s per wait.
        assert clock.waits == [1.0, 1.0]
        assert len(transport.attempts) == 3

    def test_rate_limit_budget(self, make_client: MakeClient) -> None:
        errors = Errors()
        transport = RecordingTransport(fail_always=APIError(429, retry_after=1.0))
        client = make_client(
            transport=transport, rate_limit_budget=1.5, on_error=errors, **FAST
        )
        clock = FakeClock().install(client)
        client.track("u", "E")
        assert client.flush(10) is False
        assert clock.waits == [1.0]  # a second wait would pass the 1.5 s budget
        assert len(transport.attempts) == 2
        assert client.stats().failed == 1

    def test_broken_transport_is_reported(self, make_client: MakeClient) -> None:
        errors = Errors()
        transport = RecordingTransport(fail_always=RuntimeError("bug"))  # type: ignore[arg-type]
        client = make_client(transport=transport, on_error=errors)
        client.track("u", "E")
        assert client.flush(5) is False
        assert isinstance(errors.calls[0][0], TransportError)

    def test_on_error_raising_does_not_kill_the_thread(self, make_client: MakeClient) -> None:
        def boom(error: DeliveryError, messages: list[dict[str, Any]]) -> None:
            raise RuntimeError("handler bug")

        transport = RecordingTransport([400])
        client = make_client(transport=transport, on_error=boom)
        client.track("u", "lost")
        assert client.flush(5) is False
        client.track("u", "kept")
        assert client.flush(5)
        assert [m["event"] for m in transport.messages] == ["kept"]


class TestQueueFull:
    def test_drops_new_messages_and_reports(self, make_client: MakeClient) -> None:
        """A full queue drops the new message, reports it, and never blocks."""
        gate = threading.Event()
        sending = threading.Event()

        class Blocking(RecordingTransport):
            def send(
                self, batch: Any, *, retry_count: int = 0, timeout: float | None = None
            ) -> None:
                sending.set()
                gate.wait(10)
                super().send(batch, retry_count=retry_count, timeout=timeout)

        errors = Errors()
        transport = Blocking()
        client = make_client(
            transport=transport, max_queue_size=5, flush_at=1, on_error=errors
        )
        client.track("u", "first")
        assert sending.wait(5)  # the first message is in flight, out of the queue
        assert client.stats().in_flight == 1
        for i in range(8):
            client.track("u", f"E{i}")
        assert [m["event"] for m in errors.messages] == ["E5", "E6", "E7"]
        assert all(isinstance(e, QueueFullError) for e, _ in errors.calls)
        gate.set()
        assert client.flush(5)
        stats = client.stats()
        assert stats.dropped == {"queue_full": 3}
        assert (stats.queued, stats.delivered) == (6, 6)


class TestFlushAndClose:
    def test_flush_timeout_when_down(self, make_client: MakeClient) -> None:
        """flush(timeout) returns False by its deadline while retries go on."""
        transport = RecordingTransport(fail_always=TransportError("down"))
        client = make_client(transport=transport, retry_base_delay=0.05, retry_max_delay=0.05)
        client.track("u", "E")
        started = time.monotonic()
        assert client.flush(0.3) is False
        assert time.monotonic() - started < 0.3 + DEADLINE_MARGIN_S

    def test_close_deadline_reports_everything_left(self, make_client: MakeClient) -> None:
        """close_and_flush(timeout=1) against a transport that always fails returns in
        time and reports every undelivered message exactly once."""
        errors = Errors()
        transport = RecordingTransport(fail_always=500)
        client = make_client(transport=transport, flush_at=10, on_error=errors)
        ids = {client.track("u", f"E{i}") for i in range(35)}
        started = time.monotonic()
        assert client.close_and_flush(timeout=1) is False
        assert time.monotonic() - started < 1 + DEADLINE_MARGIN_S
        reported = [m["messageId"] for m in errors.messages]
        assert sorted(reported) == sorted(ids)
        stats = client.stats()
        assert (stats.delivered, stats.failed, stats.queue_depth, stats.in_flight) == (
            0, 35, 0, 0
        )

    def test_close_interrupts_a_long_retry_wait(self, make_client: MakeClient) -> None:
        transport = RecordingTransport(fail_always=503)
        client = make_client(transport=transport, retry_base_delay=30, retry_max_delay=30)
        client.track("u", "E")
        assert transport.wait_for_attempts(1)
        started = time.monotonic()
        assert client.close_and_flush(timeout=0.5) is False
        assert time.monotonic() - started < 0.5 + DEADLINE_MARGIN_S

    def test_close_drains_and_is_idempotent(
        self, make_client: MakeClient, transport: RecordingTransport
    ) -> None:
        errors = Errors()
        client = make_client(flush_interval=3600, on_error=errors)
        for i in range(5):
            client.track("u", f"E{i}")
        assert client.close_and_flush(5) is True
        assert len(transport.messages) == 5
        assert transport.closed
        assert client.close_and_flush(5) is True
        mid = client.track("u", "late")
        assert isinstance(mid, str)
        assert isinstance(errors.calls[-1][0], ClientClosedError)
        assert client.stats().dropped == {"closed": 1}
        assert client.flush(1) is True

    def test_context_manager_closes(self, transport: RecordingTransport) -> None:
        with Client("k", transport=transport, flush_interval=3600) as client:
            client.track("u", "E")
        assert len(transport.messages) == 1
        assert client.stats().delivered == 1

    def test_flush_from_many_threads(
        self, make_client: MakeClient, transport: RecordingTransport
    ) -> None:
        client = make_client(flush_interval=3600)
        results: list[bool] = []

        def work(n: int) -> None:
            for i in range(50):
                client.track("u", f"T{n}-{i}")
            results.append(client.flush(10))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [True] * 6
        assert len(transport.messages) == 300

    def test_flush_with_nothing_queued(self, make_client: MakeClient) -> None:
        assert make_client().flush(0) is True


class TestModes:
    def test_sync_mode_sends_in_the_call(self, make_client: MakeClient) -> None:
        transport = RecordingTransport([503])
        client = make_client(transport=transport, sync_mode=True, **FAST)
        client.track("u", "E")
        assert len(transport.messages) == 1
        assert transport.attempts == [(1, 0), (1, 1)]
        assert client.stats().delivered == 1
        assert not [t for t in threading.enumerate() if t.name == "segment_client.consumer"]

    def test_sync_mode_failure_is_reported_not_raised(self, make_client: MakeClient) -> None:
        errors = Errors()
        client = make_client(
            transport=RecordingTransport([400]), sync_mode=True, on_error=errors
        )
        client.track("u", "E")
        assert len(errors.messages) == 1
        assert client.stats().failed == 1

    def test_send_false_counts_without_sending(
        self, make_client: MakeClient, transport: RecordingTransport
    ) -> None:
        client = make_client(send=False)
        client.track("u", "E")
        with pytest.raises(ValueError, match="event"):
            client.track("u", None)
        assert client.flush(1)
        assert transport.attempts == []
        assert client.stats().dropped == {"send_disabled": 1}
