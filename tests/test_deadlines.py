"""Deadlines reach the bottom: flush/close against a slow collector, a trickling server.

The margins asserted are loose on purpose ("not 10x"): the point is that a deadline
is kept at all, not how precisely on a loaded machine.
"""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from segment_client import Client, HTTPTransport, TransportError, _consumer, _uwsgi
from segment_client.collector import Collector, Fault
from segment_client.testing import RecordingTransport
from tests._support.clock import DEADLINE_MARGIN_S as MARGIN_S
from tests._support.trickle import TrickleServer

# Each request to the slow collector takes this long and then succeeds.
SLOW_S = 0.5
MESSAGES = 20  # one per request: 10 s of work, far past any deadline below
DEADLINE_S = 2.0


def _timed(call: Any, *args: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = call(*args)
    return result, time.monotonic() - start


@pytest.fixture(autouse=True)
def _one_message_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # The backlog lever would send the waiting messages in one large request: these
    # tests need many slow requests, so every batch carries flush_at (1) messages.
    monkeypatch.setattr(_consumer, "BACKLOG_BATCH_CAP", 1)


@pytest.fixture(name="slow_collector")
def _slow_collector() -> Any:
    with Collector(faults=[Fault(delay=SLOW_S)]) as collector:
        yield collector


def _check_deadlines(client: Client, collector: Collector) -> None:
    for i in range(MESSAGES):
        client.track("user-1", "Slow", {"i": i})
    client.flush_at = 1  # live: one request per message from now on
    ok, took = _timed(client.flush, DEADLINE_S)
    assert ok is False
    assert took < DEADLINE_S + MARGIN_S
    ok, took = _timed(client.close_and_flush, DEADLINE_S)
    assert ok is False
    assert took < DEADLINE_S + MARGIN_S
    stats = client.stats()
    # Every accepted message is accounted for, and the slow collector did deliver some.
    assert 0 < stats.delivered < MESSAGES
    assert len(collector.messages()) >= stats.delivered


def test_threaded_flush_and_close_keep_their_deadline(slow_collector: Collector) -> None:
    client = Client(
        "wk", host=slow_collector.url, flush_at=100, flush_interval=60, max_retries=0
    )
    _check_deadlines(client, slow_collector)
    assert client.stats().delivered + client.stats().failed == MESSAGES


def test_inline_flush_and_close_keep_their_deadline(
    slow_collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uWSGI without threads: the caller drains, checking the deadline between batches."""
    monkeypatch.setattr(_uwsgi, "threads_unavailable", lambda: True)
    client = Client(
        "wk", host=slow_collector.url, flush_at=100, flush_interval=60, max_retries=0
    )
    _check_deadlines(client, slow_collector)
    assert client._consumer.thread is None
    stats = client.stats()
    assert stats.delivered + stats.failed == MESSAGES


def test_spool_flush_and_close_keep_their_deadline(
    slow_collector: Collector, tmp_path: Path
) -> None:
    client = Client(
        "wk", host=slow_collector.url, flush_at=100, flush_interval=60, max_retries=0,
        spool_dir=tmp_path / "spool",
    )
    _check_deadlines(client, slow_collector)
    # The spool keeps what the deadline cut off: a second client delivers all of it.
    delivered = client.stats().delivered
    slow_collector.set_faults()
    again = Client("wk", host=slow_collector.url, spool_dir=tmp_path / "spool")
    assert again.close_and_flush(30)
    assert delivered + again.stats().delivered >= MESSAGES
    ids = {m["messageId"] for m in slow_collector.messages()}
    assert len(ids) == MESSAGES


def test_a_trickling_server_cannot_stretch_an_attempt() -> None:
    """requests' timeout is per read; the attempt as a whole is bounded here."""
    with TrickleServer(interval=0.2) as server:
        transport = HTTPTransport("wk", url=server.url + "/v1/batch", timeout=1.0)
        try:
            start = time.monotonic()
            with pytest.raises(TransportError, match="timed out"):
                transport.send([b'{"type":"track"}'])
            assert time.monotonic() - start < 1.0 + MARGIN_S
            # The time left given by the sender bounds it further.
            start = time.monotonic()
            with pytest.raises(TransportError, match="timed out"):
                transport.send([b'{"type":"track"}'], timeout=0.3)
            assert time.monotonic() - start < 0.3 + MARGIN_S
        finally:
            transport.close()
        assert server.connections == 2


def test_a_trickling_server_through_a_client() -> None:
    with TrickleServer(interval=0.2) as server:
        errors: list[Any] = []
        client = Client(
            "wk", host=server.url, request_timeout=0.5, max_retries=0,
            on_error=lambda error, messages: errors.append((error, len(messages))),
        )
        client.track("user-1", "E")
        ok, took = _timed(client.close_and_flush, 30)
        assert ok is False
        assert took < 0.5 + MARGIN_S
        assert len(errors) == 1 and errors[0][1] == 1
        assert "timed out" in str(errors[0][0])


def test_the_sender_passes_the_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each attempt gets min(request_timeout, deadline - now), on an injected clock."""
    now = [100.0]
    monkeypatch.setattr(_uwsgi, "threads_unavailable", lambda: True)
    transport = RecordingTransport()
    client = Client(
        "wk", transport=transport, request_timeout=7.0, flush_at=100, flush_interval=60
    )
    client._consumer._clock = client._consumer.sender._clock = lambda: now[0]
    client.track("user-1", "E")
    assert client.flush(3.0)
    assert transport.timeouts == [3.0]
    client.track("user-1", "E")
    assert client.flush(math.inf)
    assert transport.timeouts == [3.0, 7.0]
    assert client.close_and_flush()


def test_the_watchdog_cuts_only_attempts_past_their_deadline() -> None:
    from segment_client._transports import _watchdog

    class Conn:
        def __init__(self) -> None:
            self.sock, self.peer = socket.socketpair()

    watchdog = _watchdog.Watchdog()
    try:
        quick, slow = Conn(), Conn()
        attempt = watchdog.begin(30.0)
        _watchdog._register(quick)  # type: ignore[arg-type]
        watchdog.end(attempt)  # finished in time: never cut
        attempt = watchdog.begin(0.05)
        _watchdog._register(slow)  # type: ignore[arg-type]
        slow.sock.settimeout(30)
        assert slow.sock.recv(1) == b""  # shut down under the blocked read
        assert attempt.expired
        watchdog.end(attempt)
        quick.peer.sendall(b"x")
        assert quick.sock.recv(1) == b"x"
    finally:
        watchdog.close()
        for conn in (quick, slow):
            conn.sock.close()
            conn.peer.close()


def test_closing_the_client_ends_its_watchdog_thread() -> None:
    with Collector() as collector:
        client = Client("k", host=collector.url)
        client.track("u", "Watched")
        assert client.flush(5)
        transport = client._consumer.sender.transport
        assert isinstance(transport, HTTPTransport)
        thread = transport._watchdog._thread
        assert thread is not None and thread.is_alive()
        assert client.close_and_flush(5)
        # Joined by the close: no thread left waiting for its idle timeout.
        assert not thread.is_alive()
