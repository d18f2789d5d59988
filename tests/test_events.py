"""Client events: the emitter, typed payloads, handler threads and errors."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

import pytest

from segment_client import ConfigurationError
from segment_client._events import (
    EVENT_NAMES,
    EVENT_THREADS,
    CallAfterCloseEvent,
    DrainedEvent,
    DropEvent,
    Events,
    redact_headers,
)


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
