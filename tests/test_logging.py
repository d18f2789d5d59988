"""The delivery log: one WARNING per outage, one INFO at recovery, summarised ERRORs."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
import requests

from segment_client import Client, ConnectionDropped, DeliveryError, HTTPTransport
from segment_client._exceptions import APIError, TransportError
from segment_client._log import DeliveryLog, describe, format_duration, host_port
from segment_client._transports._http import _plain_reason
from tests._support.localhttp import LocalServer, Response, ScriptedAPI

LOGGER = "segment_client"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="clock")
def _clock() -> Clock:
    return Clock()


@pytest.fixture(name="log")
def _log(clock: Clock) -> DeliveryLog:
    return DeliveryLog(clock=clock, interval=60.0)


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_host_port_makes_the_port_explicit() -> None:
    assert host_port("https://api.segment.io/v1/batch") == "api.segment.io:443"
    assert host_port("http://127.0.0.1:9/v1/batch") == "127.0.0.1:9"
    assert host_port("http://localhost/v1/batch") == "localhost:80"
    assert host_port("http://[::1]:8080/x") == "[::1]:8080"


def test_describe_names_the_status_the_host_and_the_servers_message() -> None:
    error = APIError(503, "  upstream\n  unavailable  ")
    assert describe(error, "api.segment.io:443") == (
        "HTTP 503 from api.segment.io:443: upstream unavailable"
    )
    assert describe(APIError(502), "h:1") == "HTTP 502 from h:1"
    long = describe(APIError(500, "x" * 1000), "h:1")
    assert long.endswith("...") and len(long) < 240
    assert describe(TransportError("connection refused to 127.0.0.1:9")) == (
        "connection refused to 127.0.0.1:9"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0.0 s"), (0.25, "0.25 s"), (2.5, "2.5 s"), (12.4, "12 s"), (125, "2 min 5 s"),
     (120, "2 min"), (7200, "2 h"), (3720, "1 h 2 min")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_an_outage_warns_once_and_its_recovery_is_one_info(
    log: DeliveryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    cause = "connection refused to 127.0.0.1:9"
    for retry in range(1, 11):
        log.attempt_failed(cause, 100, retry=retry, wait=0.5)
        clock.now += 1
    assert log.failing and log.cause == cause
    assert _lines(caplog, logging.WARNING) == [
        f"delivery is failing: {cause}; retrying, messages are kept meanwhile"
    ]
    debug = _lines(caplog, logging.DEBUG)
    assert len(debug) == 10
    assert debug[0] == f"batch of 100 message(s) failed: {cause}; retry 1 in 0.5 s"
    clock.now += 2
    log.delivered(100)
    log.delivered(100)  # healthy again: nothing more
    assert _lines(caplog, logging.INFO) == ["delivery recovered after 12 s; nothing was lost"]
    assert not log.failing and log.cause == ""
    # A second outage is a new WARNING.
    log.attempt_failed(cause, 1, retry=1, wait=1)
    assert len(_lines(caplog, logging.WARNING)) == 2


def test_a_new_cause_warns_again_at_most_once_per_interval(
    log: DeliveryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    log.attempt_failed("connection refused to h:1", 1)
    clock.now += 10
    log.attempt_failed("timed out after 10 s", 1)  # within the interval: DEBUG only
    clock.now += 60
    log.attempt_failed("HTTP 503 from h:1", 1)
    log.attempt_failed("connection refused to h:1", 1)
    assert _lines(caplog, logging.WARNING) == [
        "delivery is failing: connection refused to h:1; retrying, messages are kept meanwhile",
        "delivery is still failing, now: HTTP 503 from h:1",
    ]


def test_losses_of_an_outage_are_a_handful_of_lines(
    log: DeliveryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """1,000 messages lost in 10 batches, 20 s apart: 4 ERROR lines, the counts adding up."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    cause = "connection refused to 127.0.0.1:9"
    for _ in range(10):
        for retry in range(1, 4):
            log.attempt_failed(cause, 100, retry=retry, wait=5)
        log.lost(100, cause)
        log.tick()
        clock.now += 20
    log.idle()
    errors = _lines(caplog, logging.ERROR)
    assert errors == [
        f"100 message(s) not delivered: {cause}",
        f"300 more message(s) not delivered in 3 batch(es) over the last 1 min: {cause}",
        f"300 more message(s) not delivered in 3 batch(es) over the last 1 min: {cause}",
        f"300 more message(s) not delivered in 3 batch(es) over the last 1 min: {cause}",
    ]
    assert len(_lines(caplog, logging.WARNING)) == 1
    log.delivered(1)
    assert _lines(caplog, logging.INFO) == [
        "delivery recovered after 3 min 20 s; 1000 message(s) were lost meanwhile"
    ]


def test_recovery_writes_the_pending_summary_first(
    log: DeliveryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    log.attempt_failed("HTTP 503 from h:1", 5)
    log.lost(5, "HTTP 503 from h:1")
    log.lost(7, "HTTP 500 from h:1")
    log.lost(3, "HTTP 503 from h:1")
    log.lost(1, "HTTP 503 from h:1")
    clock.now += 5
    log.delivered(1)
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert records[1:] == [
        (logging.ERROR, "5 message(s) not delivered: HTTP 503 from h:1"),
        (logging.ERROR, "11 more message(s) not delivered in 3 batch(es) over the last 5.0 s: "
                        "HTTP 503 from h:1 (and 1 other cause(s))"),
        (logging.INFO, "delivery recovered after 5.0 s; 16 message(s) were lost meanwhile"),
    ]


def test_tick_writes_only_windows_that_ended(
    log: DeliveryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    log.lost(1, "HTTP 400 from h:1: bad")
    log.lost(2, "HTTP 400 from h:1: bad")
    log.tick()
    assert len(caplog.records) == 1
    clock.now += 59
    log.tick()
    assert len(caplog.records) == 1
    clock.now += 1
    log.tick()
    assert caplog.records[-1].getMessage() == (
        "2 more message(s) not delivered in 1 batch(es) over the last 1 min: "
        "HTTP 400 from h:1: bad"
    )
    log.tick()
    log.idle()
    assert len(caplog.records) == 2  # nothing pending: no empty summary


def test_drops_are_summarised_per_reason(
    log: DeliveryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    for _ in range(500):
        log.dropped("queue_full", 1, "queue full (10000 messages)")
    log.dropped("closed", 1, "the client is closed")
    clock.now += 3
    log.idle()
    assert _lines(caplog, logging.ERROR) == [
        "1 message(s) dropped (queue_full): queue full (10000 messages)",
        "1 message(s) dropped (closed): the client is closed",
        "499 more message(s) dropped (queue_full) over the last 3.0 s: "
        "queue full (10000 messages)",
    ]


def test_abandoned_says_why(
    log: DeliveryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    log.abandoned(3)
    log.attempt_failed("timed out after 10 s", 5)
    log.abandoned(5)
    log.abandoned(2, spooled=True)
    assert [r.getMessage() for r in caplog.records] == [
        "3 message(s) not delivered before the close deadline: they were still being sent "
        "(a slow collector, or too short a deadline)",
        "delivery is failing: timed out after 10 s; retrying, messages are kept meanwhile",
        "5 message(s) not delivered before the close deadline: delivery was failing: "
        "timed out after 10 s",
        "2 message(s) not delivered before the close; they stay in the queue and the next "
        "client on it sends them (delivery was failing: timed out after 10 s)",
    ]
    assert [r.levelno for r in caplog.records] == [
        logging.ERROR, logging.WARNING, logging.ERROR, logging.WARNING
    ]


def test_no_line_has_the_logger_name_as_a_prefix(
    log: DeliveryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    log.attempt_failed("x", 1, retry=1, wait=1)
    log.lost(1, "x")
    log.lost(1, "x")
    log.dropped("queue_full", 1, "x")
    log.abandoned(1)
    log.idle()
    clock.now += 1
    log.delivered(1)
    assert len(caplog.records) == 7
    assert not [r for r in caplog.records if r.getMessage().startswith("segment_client")]


def test_isolated_messages_have_their_own_window(
    log: DeliveryLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    log.lost(1, "HTTP 400 from h:1: bad field", kind="poison")
    log.lost(1, "HTTP 400 from h:1: bad field", kind="poison")
    log.lost(98, "HTTP 503 from h:1")
    clock.now += 2
    log.idle()
    assert _lines(caplog, logging.ERROR) == [
        "1 message(s) undeliverable, isolated from their batch: HTTP 400 from h:1: bad field",
        "98 message(s) not delivered: HTTP 503 from h:1",
        "1 more message(s) undeliverable, isolated from their batch over the last 2.0 s: "
        "HTTP 400 from h:1: bad field",
    ]


def test_where_names_the_collector_of_an_http_transport() -> None:
    from segment_client._log import where

    class WithUrl:
        url = "https://events.eu1.segmentapis.com/v1/batch"

    assert where(WithUrl()) == "events.eu1.segmentapis.com:443"
    assert where(object()) is None


# -- the whole story, through a real client ---------------------------------------------


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_collector_is_explained_once_and_its_losses_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = _closed_port()
    reported: list[DeliveryError] = []
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    client = Client(
        "wk", host=f"http://127.0.0.1:{port}", flush_timeout=1.0,
        on_error=lambda error, messages: reported.append(error),
    )
    for i in range(5):
        client.track("u", f"E{i}")
    started = time.monotonic()
    assert client.flush() is False  # bounded by flush_timeout, not hanging
    assert time.monotonic() - started < 10  # loose: not 10x the bound
    assert client.close_and_flush() is False
    cause = f"connection refused to 127.0.0.1:{port}"
    assert _lines(caplog, logging.WARNING) == [
        f"delivery is failing: {cause}; retrying, messages are kept meanwhile"
    ]
    assert _lines(caplog, logging.ERROR) == [
        f"5 message(s) not delivered before the close deadline: delivery was failing: {cause}"
    ]
    assert _lines(caplog, logging.INFO) == []
    debug = _lines(caplog, logging.DEBUG)
    assert debug and all(line.startswith(f"batch of 5 message(s) failed: {cause}; retry ")
                         for line in debug)
    assert "Max retries" not in caplog.text
    assert [str(error) for error in reported] == [
        f"5 message(s) not delivered before the close deadline (delivery was failing: {cause})"
    ]
    assert client.stats().failed == 5


def test_a_recovery_is_one_info_and_each_request_a_debug_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = ScriptedAPI([Response(503, b"upstream busy"), 503])
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with LocalServer(collector) as server:
        client = Client("wk", host=server.url, retry_base_delay=0, gzip=False)
        client.track("u", "E")
        assert client.close_and_flush(5)
    where = f"127.0.0.1:{server.port}"
    assert _lines(caplog, logging.WARNING) == [
        f"delivery is failing: HTTP 503 from {where}: upstream busy; retrying, messages are "
        "kept meanwhile"
    ]
    [info] = _lines(caplog, logging.INFO)
    assert info.startswith("delivery recovered after ") and info.endswith("nothing was lost")
    assert _lines(caplog, logging.ERROR) == []
    size = len(server.requests[0].body)
    posts = [line for line in _lines(caplog, logging.DEBUG) if line.startswith("POST ")]
    assert [line.split(" in ")[0] for line in posts] == [
        f"POST {where}: 1 message(s), {size} bytes, HTTP {status}" for status in (503, 503, 200)
    ]
    assert all(line.endswith(" ms") for line in posts)


# -- the HTTP transport's words for "no answer" -----------------------------------------


def _send(url: str, timeout: float = 5.0) -> TransportError:
    transport = HTTPTransport("wk-secret", url=url + "/v1/batch", timeout=timeout)
    try:
        with pytest.raises(TransportError) as caught:
            transport.send([b'{"type":"track"}'])
    finally:
        transport.close()
    return caught.value


def test_connection_refused_names_host_and_port() -> None:
    port = _closed_port()
    error = _send(f"http://127.0.0.1:{port}")
    assert str(error) == f"connection refused to 127.0.0.1:{port}"


def test_a_server_closing_the_connection_is_said_so() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def hang_up() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.close()

        thread = threading.Thread(target=hang_up)
        thread.start()
        error = _send(f"http://127.0.0.1:{port}")
        thread.join(5)
    assert isinstance(error, ConnectionDropped)
    assert str(error) == f"127.0.0.1:{port} closed the connection without a complete answer"


def test_a_silent_server_times_out_in_plain_words() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts connections (the backlog) and never answers
        port = listener.getsockname()[1]
        error = _send(f"http://127.0.0.1:{port}", timeout=0.2)
    assert str(error) == f"timed out after 0.2 s waiting for 127.0.0.1:{port}"


def test_tls_to_a_plain_server_names_the_tls_failure() -> None:
    with LocalServer(lambda request: Response()) as server:
        error = _send(server.url.replace("http://", "https://"))
    assert str(error).startswith(f"TLS failed with 127.0.0.1:{server.port}: ")
    assert "Max retries" not in str(error)


def test_dns_failures_and_unknown_errors_have_words_too() -> None:
    url = "https://collector.example:8443/v1/batch"
    dns = requests.ConnectionError(OSError("wrapped"))
    dns.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert _plain_reason(dns, url, 10) == (
        "could not resolve the host name of collector.example:8443"
    )
    odd = requests.RequestException("Max retries exceeded with url: /v1/batch (Caused by "
                                    "Oddity('strange'))")
    assert _plain_reason(odd, url, 10) == (
        "RequestException talking to collector.example:8443: Oddity('strange')"
    )
    bare = requests.RequestException("Max retries exceeded with url: /v1/batch")
    assert _plain_reason(bare, url, 10) == (
        "RequestException talking to collector.example:8443: no answer"
    )


def test_no_log_call_in_the_package_repeats_the_logger_name() -> None:
    """A `%(name)s` format would show "segment_client: segment_client: ..." otherwise."""
    import re
    from pathlib import Path

    import segment_client

    root = Path(segment_client.__file__).parent
    call = re.compile(r'logger\.(?:debug|info|warning|error|exception|log)\(\s*f?"segment_client')
    offenders = [str(path.relative_to(root)) for path in sorted(root.rglob("*.py"))
                 if call.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
