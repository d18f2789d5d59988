"""The client against the real local collector over 127.0.0.1, with injected faults.

Every test proves exact counts: messages accepted by calls == delivered + reported
failed, and the unique messageIds the collector holds are exactly the ones sent.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from segment_client import Client, DeliveryError, MessageTooLargeError
from segment_client.collector import Collector, Fault
from tests._support.clock import DEADLINE_MARGIN_S, FakeClock

FAST_RETRIES: dict[str, Any] = {"retry_base_delay": 0.02, "retry_max_delay": 0.1}


class Reports:
    """An on_error sink: every reported message, by messageId."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.errors: list[DeliveryError] = []
        self.ids: list[str] = []

    def __call__(self, error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        with self.lock:
            self.errors.append(error)
            self.ids.extend(message["messageId"] for message in messages)


@pytest.fixture(name="reports")
def _reports() -> Reports:
    return Reports()


def stored_ids(collector: Collector) -> list[str]:
    return [message["messageId"] for message in collector.messages()]


def send_tracks(client: Client, count: int, prefix: str = "user") -> list[str]:
    return [
        client.track(f"{prefix}-{i % 7}", "Item Viewed", {"i": i}) for i in range(count)
    ]


def test_fault_mix_delivers_everything_with_exact_duplicates(reports: Reports) -> None:
    faults = [
        # One of each first, so every kind is exercised whatever the draws.
        Fault(status=500, count=1), Fault(status=429, retry_after=1, count=1),
        Fault(drop=True, count=1), Fault(drop=True, store=True, count=1),
        Fault(status=500, rate=0.20), Fault(status=429, retry_after=1, rate=0.10),
        Fault(drop=True, rate=0.025), Fault(drop=True, store=True, rate=0.025),
    ]
    with Collector(faults=faults, seed=3) as collector:
        client = Client("key", host=collector.url, on_error=reports, max_retries=50,
                        **FAST_RETRIES)
        clock = FakeClock().install(client)  # Retry-After waits pass on a fake clock
        sent = send_tracks(client, 2000)
        assert client.close_and_flush(timeout=60) is True
        assert 1.0 in clock.waits  # the 429s were honoured (clamped to 1 s)
        stats = client.stats()
        assert (stats.queued, stats.delivered, stats.failed) == (2000, 2000, 0)
        assert stats.dropped == {} and reports.ids == []
        assert stats.retried > 0
        ids = stored_ids(collector)
        assert set(ids) == set(sent)
        server = collector.stats()
        assert server["unique"] == 2000
        # Duplicates only where a dropped connection had been processed: exactly the
        # messages stored before those answers were lost, each resent with its messageId.
        assert server["duplicates"] == server["fault_stored_messages"] >= 1
        assert len(ids) == 2000 + server["duplicates"]
        assert all(rule["injected"] >= 1 for rule in collector.faults()["faults"][:4])


class _RetryLogged(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retry" in record.getMessage():
            self.seen.set()


@pytest.fixture(name="retry_logged")
def _retry_logged() -> Iterator[_RetryLogged]:
    logger = logging.getLogger("segment_client")
    handler = _RetryLogged()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_collector_down_at_start_then_up(reports: Reports, retry_logged: _RetryLogged) -> None:
    port = _free_port()
    client = Client("key", host=f"http://127.0.0.1:{port}", on_error=reports,
                    max_retries=200, **FAST_RETRIES)
    sent = send_tracks(client, 300)
    assert retry_logged.seen.wait(10), "the client never retried against the closed port"
    with Collector(port=port) as collector:
        assert client.close_and_flush(timeout=30) is True
        assert set(stored_ids(collector)) == set(sent)
        assert collector.stats()["unique"] == 300
    stats = client.stats()
    assert (stats.delivered, stats.failed, reports.ids) == (300, 0, [])
    assert stats.retried > 0


def test_response_slower_than_request_timeout_is_retried(reports: Reports) -> None:
    with Collector(faults=[Fault(delay=1.0, count=1)]) as collector:
        client = Client("key", host=collector.url, request_timeout=0.25, on_error=reports,
                        flush_interval=5, **FAST_RETRIES)
        sent = send_tracks(client, 10)
        assert client.close_and_flush(timeout=20) is True
        stats = client.stats()
        assert (stats.delivered, stats.failed, stats.retried) == (10, 0, 10)
        # The slow request was processed too once its delay ended: one duplicate each.
        assert collector.wait_for(20, timeout=10)
        server = collector.stats()
        assert (server["unique"], server["duplicates"]) == (10, 10)
        assert set(stored_ids(collector)) == set(sent)


def test_batch_answered_413_is_split_and_delivered(reports: Reports) -> None:
    with Collector(faults=[Fault(status=413, count=1)]) as collector:
        client = Client("key", host=collector.url, flush_interval=5, on_error=reports)
        sent = send_tracks(client, 100)
        assert client.flush(timeout=10) is True
        server = collector.stats()
        assert (server["requests"], server["batches"], server["total"]) == (3, 2, 100)
        sizes: dict[str, int] = {}
        for event in collector.events():
            sizes[event["batchId"]] = sizes.get(event["batchId"], 0) + 1
        assert sorted(sizes.values()) == [50, 50]
        assert [m["messageId"] for m in collector.messages()] == sent  # order kept
        assert client.stats().batches_sent == 2
        assert client.close_and_flush(timeout=5) is True
        assert reports.ids == []


def test_oversize_message_rejected_at_call_others_delivered(reports: Reports) -> None:
    with Collector() as collector:
        client = Client("key", host=collector.url, on_error=reports)
        before = client.track("user-1", "Small")
        with pytest.raises(MessageTooLargeError):
            client.track("user-1", "Huge", {"blob": "x" * 40_000})
        after = client.track("user-1", "Small")
        assert client.close_and_flush(timeout=10) is True
        assert stored_ids(collector) == [before, after]
        assert collector.rejections() == []
        assert client.stats().delivered == 2


def test_close_with_500_forever_returns_in_time_and_reports_exactly(reports: Reports) -> None:
    with Collector(faults=[Fault(status=500)]) as collector:
        client = Client("key", host=collector.url, max_retries=10_000, on_error=reports,
                        **FAST_RETRIES)
        sent = send_tracks(client, 250)
        started = time.monotonic()
        assert client.close_and_flush(timeout=2) is False
        elapsed = time.monotonic() - started
        assert elapsed < 2 + DEADLINE_MARGIN_S, f"close_and_flush(timeout=2) took {elapsed:.2f}s"
        stats = client.stats()
        assert (stats.queued, stats.delivered, stats.failed) == (250, 0, 250)
        assert sorted(reports.ids) == sorted(sent)  # each undelivered one reported once
        assert collector.stats()["total"] == 0
        assert collector.stats()["faults_injected"] >= 1


def _child_tracks(client: Client, child: int) -> None:
    for i in range(1000):
        client.track(f"child-{child}", "Child Event", {"i": i})
    # No explicit close: the library's exit hook flushes a multiprocessing child.


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_children_send_their_own_parent_sends_its_own(reports: Reports) -> None:
    with Collector() as collector:
        client = Client("key", host=collector.url, flush_interval=30, on_error=reports)
        parent_ids = send_tracks(client, 50, prefix="parent")
        assert client.stats().queue_depth + client.stats().in_flight == 50  # still queued
        context = multiprocessing.get_context("fork")
        children = [context.Process(target=_child_tracks, args=(client, n)) for n in range(4)]
        for child in children:
            child.start()
        for child in children:
            child.join(60)
        assert [child.exitcode for child in children] == [0, 0, 0, 0]
        assert client.close_and_flush(timeout=10) is True
        server = collector.stats()
        assert (server["total"], server["unique"], server["duplicates"]) == (4050, 4050, 0)
        messages = collector.messages()
        assert {m["messageId"] for m in messages if m["userId"].startswith("parent")} == set(
            parent_ids
        )
        by_child = {f"child-{n}": 0 for n in range(4)}
        for message in messages:
            if message["userId"] in by_child:
                by_child[message["userId"]] += 1
        assert by_child == {f"child-{n}": 1000 for n in range(4)}
        assert reports.ids == []


_SIGTERM_SCRIPT = """
import signal, sys
from segment_client import Client

client = Client("key", host=sys.argv[1], flush_at=2500, flush_interval=300)

def on_sigterm(signum, frame):
    delivered = client.close_and_flush(timeout=10)
    sys.exit(0 if delivered else 3)

signal.signal(signal.SIGTERM, on_sigterm)
for i in range(int(sys.argv[2])):
    client.track("sig-user", "Before SIGTERM", {"i": i})
print("ready", flush=True)
signal.pause()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX")
def test_sigterm_flushes_everything_queued() -> None:
    with Collector() as collector:
        process = subprocess.Popen(
            [sys.executable, "-c", _SIGTERM_SCRIPT, collector.url, "500"],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            assert collector.stats()["total"] == 0  # everything is still queued
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        server = collector.stats()
        assert (server["total"], server["unique"]) == (500, 500)


def test_sixteen_threads_share_one_client(reports: Reports) -> None:
    threads_n, per_thread = 16, 2000
    with Collector() as collector:
        client = Client("key", host=collector.url, max_queue_size=threads_n * per_thread,
                        on_error=reports)
        start = threading.Barrier(threads_n)
        ids: list[list[str]] = [[] for _ in range(threads_n)]

        def work(n: int) -> None:
            start.wait()
            ids[n] = [client.track(f"t-{n}", "Threaded", {"i": i}) for i in range(per_thread)]

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert client.close_and_flush(timeout=120) is True
        stats = client.stats()
        assert (stats.delivered, stats.failed, stats.dropped) == (32_000, 0, {})
        server = collector.stats()
        assert (server["total"], server["unique"]) == (32_000, 32_000)
        assert set(stored_ids(collector)) == {i for chunk in ids for i in chunk}
        assert reports.ids == []
