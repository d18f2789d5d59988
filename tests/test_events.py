"""Client events: the emitter, typed payloads, handler threads and errors."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from segment_client import (
    APIError,
    Client,
    ClientClosedError,
    ConfigurationError,
    DeliveryError,
    DeliveryFailureEvent,
    HttpRequestEvent,
    HttpResponseEvent,
)
from segment_client._events import (
    EVENT_NAMES,
    EVENT_THREADS,
    CallAfterCloseEvent,
    DrainedEvent,
    DropEvent,
    Events,
    redact_headers,
)
from segment_client.testing import RecordingTransport
from tests._support.localhttp import LocalServer, Response, ScriptedAPI

from .conftest import CONSUMER_THREAD


def test_every_event_has_a_documented_thread() -> None:
    assert set(EVENT_THREADS) == set(EVENT_NAMES)
    assert EVENT_NAMES == (
        "http_request", "http_response", "delivery_failure", "drop", "drained",
        "call_after_close",
    )


def test_handlers_run_in_order_and_unsubscribe_removes_one_registration() -> None:
    events = Events()
    seen: list[tuple[str, DrainedEvent]] = []

    def first(event: DrainedEvent) -> None:
        seen.append(("first", event))

    off_a = events.on("drained", first)
    off_b = events.on("drained", first)  # the same function twice: two registrations
    events.on("drained", lambda event: seen.append(("second", event)))
    payload = DrainedEvent(delivered=3, failed=0)
    events.emit("drained", payload)
    assert [name for name, _ in seen] == ["first", "first", "second"]
    assert all(event is payload for _, event in seen)
    off_a()
    off_a()  # idempotent: does not remove the other registration of `first`
    seen.clear()
    events.emit("drained", payload)
    assert [name for name, _ in seen] == ["first", "second"]
    off_b()
    seen.clear()
    events.emit("drained", payload)
    assert [name for name, _ in seen] == ["second"]


def test_nobody_listening_is_an_empty_tuple() -> None:
    events = Events()
    for name in EVENT_NAMES:
        assert getattr(events, name) == ()
    off = events.on("drop", print)
    assert events.drop and not events.drained
    off()
    assert events.drop == ()


def test_a_raising_handler_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = Events()
    seen: list[DropEvent] = []

    def broken(event: DropEvent) -> None:
        raise RuntimeError("handler bug")

    events.on("drop", broken)
    events.on("drop", seen.append)
    with caplog.at_level(logging.ERROR, logger="segment_client"):
        events.emit("drop", DropEvent("queue_full", 1))
    assert len(seen) == 1
    [record] = caplog.records
    assert "'drop' event" in record.getMessage() and "broken" in record.getMessage()
    assert record.exc_info is not None and "handler bug" in str(record.exc_info[1])


def test_unknown_names_and_non_callables_are_clear_errors() -> None:
    events = Events()
    with pytest.raises(ConfigurationError, match=r"unknown event 'flush'.*http_request"):
        events.on("flush", print)
    with pytest.raises(ConfigurationError, match="handler of 'drop' must be callable"):
        events.on("drop", "not a function")  # type: ignore[call-overload]


def test_payloads_are_frozen() -> None:
    event = CallAfterCloseEvent({"type": "track", "event": "x"})
    assert event.type == "track"
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.message = {}  # type: ignore[misc]


def test_on_is_thread_safe() -> None:
    events = Events()
    offs: list[Any] = []
    lock = threading.Lock()

    def register() -> None:
        for _ in range(200):
            off = events.on("drained", lambda event: None)
            with lock:
                offs.append(off)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(events.drained) == 800
    for off in offs:
        off()
    assert events.drained == ()


def test_redact_headers_keeps_the_scheme_and_hides_every_secret() -> None:
    headers = {
        "Authorization": "Basic d2s6",
        "Proxy-Authorization": "Basic cHc=",
        "Set-Cookie": "session=abc",
        "X-Echo": "key wk-123 here",
        "Content-Type": "application/json",
    }
    assert redact_headers(headers, ("wk-123",)) == {
        "Authorization": "Basic ***",
        "Proxy-Authorization": "Basic ***",
        "Set-Cookie": "***",
        "X-Echo": "key *** here",
        "Content-Type": "application/json",
    }


# -- on a client ----------------------------------------------------------------------


def test_a_client_emits_every_event_on_the_documented_thread() -> None:
    seen: dict[str, list[tuple[Any, str]]] = {name: [] for name in EVENT_NAMES}

    def recorder(name: str) -> Any:
        return lambda event: seen[name].append((event, threading.current_thread().name))

    collector = ScriptedAPI([Response(503, b'{"message": "busy"}'), Response(200), 401])
    with LocalServer(collector) as server:
        client = Client("wk-secret", host=server.url, retry_base_delay=0, flush_at=1)
        for name in EVENT_NAMES:
            client.on(name, recorder(name))  # type: ignore[call-overload]
        first = client.track("u", "E1")
        assert client.flush(5)  # 503, then delivered
        client.track("u", "E2")
        assert not client.flush(5)  # 401: failed
        assert client.close_and_flush(5)
        late = client.track("u", "late")

    caller, consumer = threading.current_thread().name, CONSUMER_THREAD
    requests = seen["http_request"]
    assert [(e.retry_count, e.message_count, t) for e, t in requests] == [
        (0, 1, consumer), (1, 1, consumer), (0, 1, consumer),
    ]
    request = requests[0][0]
    assert isinstance(request, HttpRequestEvent)
    assert request.method == "POST" and request.url == server.url + "/v1/batch"
    assert request.headers["Authorization"] == "Basic ***"
    assert json.loads(request.body)["writeKey"] == "***"
    assert json.loads(request.body)["batch"][0]["messageId"] == first
    assert request.size == len(collector_bodies(server)[0])
    responses = seen["http_response"]
    assert [(e.status, e.reason, t) for e, t in responses] == [
        (503, "Service Unavailable", consumer), (200, "OK", consumer),
        (401, "Unauthorized", consumer),
    ]
    assert responses[0][0].body == '{"message": "busy"}'
    assert all(isinstance(e, HttpResponseEvent) and e.elapsed > 0 for e, _ in responses)
    # Failures: the 401 batch (consumer thread), then the call after close (caller's).
    failures = seen["delivery_failure"]
    assert [(type(e.error), e.count, t) for e, t in failures] == [
        (APIError, 1, consumer), (ClientClosedError, 1, caller),
    ]
    assert failures[1][0].messages[0]["messageId"] == late
    assert [(e.reason, e.count, t) for e, t in seen["drop"]] == [("closed", 1, caller)]
    [(after_close, thread)] = seen["call_after_close"]
    assert after_close.type == "track" and thread == caller
    assert after_close.message["messageId"] == late
    drained = [(e.delivered, e.failed, t) for e, t in seen["drained"]]
    assert drained == [(1, 0, consumer), (1, 1, consumer)]


def collector_bodies(server: LocalServer) -> list[bytes]:
    return [request.body for request in server.requests]


def test_on_error_and_delivery_failure_see_the_same_failures() -> None:
    reported: list[tuple[DeliveryError, list[dict[str, Any]]]] = []
    client = Client(
        "wk", transport=RecordingTransport(fail_always=400),
        on_error=lambda error, messages: reported.append((error, messages)),
    )
    events: list[DeliveryFailureEvent] = []
    client.on("delivery_failure", events.append)
    client.track("u", "E")
    assert not client.flush(5)
    client.close_and_flush(5)
    assert len(reported) == len(events) == 1
    assert events[0].error is reported[0][0] and events[0].messages == reported[0][1]


def test_send_disabled_and_middleware_drops_are_drop_events() -> None:
    client = Client("wk", transport=RecordingTransport(), send=False)
    drops: list[DropEvent] = []
    client.on("drop", drops.append)
    client.track("u", "E")
    client.close_and_flush(5)
    assert drops == [DropEvent("send_disabled", 1)]
    assert client.stats().dropped == {"send_disabled": 1}


def test_a_raising_handler_never_reaches_the_caller_nor_stops_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = RecordingTransport()
    client = Client("wk", transport=transport)

    def broken(event: object) -> None:
        raise RuntimeError("handler bug")

    client.on("drained", broken)
    client.on("call_after_close", broken)
    with caplog.at_level(logging.ERROR, logger="segment_client"):
        client.track("u", "E")
        assert client.flush(5)
        client.close_and_flush(5)
        client.track("u", "late")  # the handler raises on this thread: still no exception
    assert len(transport.messages) == 1
    assert [r.getMessage().split(" (")[0] for r in caplog.records if r.exc_info] == [
        "a handler of the 'drained' event", "a handler of the 'call_after_close' event",
    ]


def test_a_client_rejects_unknown_event_names() -> None:
    client = Client("wk", transport=RecordingTransport())
    with pytest.raises(ConfigurationError, match="unknown event 'flush'"):
        client.on("flush", print)  # type: ignore[call-overload]
    client.close_and_flush(5)


def test_no_handler_means_no_payload_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zero cost when nobody listens: no payload object is even constructed."""
    import segment_client._consumer as consumer_module
    import segment_client._transports._http as http_module

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a payload was built with nobody listening")

    for module, names in (
        (consumer_module, ("DropEvent", "DrainedEvent", "DeliveryFailureEvent",
                           "CallAfterCloseEvent")),
        (http_module, ("HttpRequestEvent", "HttpResponseEvent")),
    ):
        for name in names:
            monkeypatch.setattr(module, name, forbidden)
    collector = ScriptedAPI([503])
    with LocalServer(collector) as server:
        client = Client("wk", host=server.url, retry_base_delay=0)
        client.track("u", "E")
        assert client.flush(5)
        client.close_and_flush(5)
        client.track("u", "late")
    assert len(collector.messages) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_handlers_stay_registered_in_a_forked_child(tmp_path: Path) -> None:
    out = tmp_path / "child.json"
    client = Client("wk", transport=RecordingTransport())
    drained: list[DrainedEvent] = []
    client.on("drained", drained.append)
    client.track("u", "parent")
    assert client.flush(5)
    with client._events._lock:  # held at fork: the child must not inherit it held
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                off = client.on("drop", print)  # would deadlock on the inherited lock
                off()
                client.track("u", "child")
                ok = client.flush(5)
                out.write_text(json.dumps({"ok": ok, "drained": [e.delivered for e in drained]}))
                client.close_and_flush(5)
                code = 0
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert json.loads(out.read_text()) == {"ok": True, "drained": [1, 1]}
    assert client.close_and_flush(5)
    assert [e.delivered for e in drained] == [1]
