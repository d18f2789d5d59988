"""The client's observability events: typed payloads and the emitter behind `Client.on`.

Names follow @segment/analytics-node. Each payload is a frozen dataclass; handlers run
synchronously on the thread that produced the event (see `EVENT_THREADS`), and an
exception from a handler is logged, never propagated into the library or the caller.

Cost when nobody listens: every emitting site first reads one attribute of the emitter
(a tuple of handlers, empty by default) and builds no payload when it is empty.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from ._exceptions import ConfigurationError, DeliveryError

__all__ = [
    "EVENT_NAMES",
    "EVENT_THREADS",
    "CallAfterCloseEvent",
    "DeliveryFailureEvent",
    "DrainedEvent",
    "DropEvent",
    "EventName",
    "EventSource",
    "Events",
    "HttpRequestEvent",
    "HttpResponseEvent",
    "redact_headers",
]

logger = logging.getLogger("segment_client")

EventName = Literal[
    "http_request", "http_response", "delivery_failure", "drop", "drained",
    "call_after_close",
]

#: Every event name, in the order the docs list them.
EVENT_NAMES: tuple[EventName, ...] = (
    "http_request", "http_response", "delivery_failure", "drop", "drained",
    "call_after_close",
)

#: The thread each event's handlers run on.
EVENT_THREADS: Mapping[EventName, str] = {
    "http_request": "the thread sending the batch: the consumer thread (the caller's in "
    "sync_mode)",
    "http_response": "the thread sending the batch: the consumer thread (the caller's in "
    "sync_mode)",
    "delivery_failure": "the thread sending the batch; the caller's for messages dropped "
    "at the call",
    "drop": "the caller's thread, or the consumer thread for consumer-side middleware",
    "drained": "the thread sending the batch: the consumer thread (the caller's in "
    "sync_mode)",
    "call_after_close": "the caller's thread",
}

# Headers whose whole value is a credential.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


@dataclass(frozen=True)
class HttpRequestEvent:
    """A request is about to be sent (once per attempt, retries included).

    Attributes:
        url: the URL posted to.
        method: the HTTP method ("POST").
        headers: the request headers, with credentials replaced by "***".
        body: the JSON body before compression, with the write key replaced by "***".
        size: bytes on the wire (after gzip when enabled).
        message_count: messages in the batch.
        retry_count: 0 on a first attempt, n on the n-th retry.
    """

    url: str
    method: str
    headers: Mapping[str, str]
    body: bytes
    size: int
    message_count: int
    retry_count: int


@dataclass(frozen=True)
class HttpResponseEvent:
    """The collector answered a request (any status; not emitted when no answer came).

    Attributes:
        url: the URL posted to.
        status: the HTTP status code.
        reason: the status text ("OK", "Service Unavailable").
        headers: the response headers, with credentials replaced by "***".
        body: the response text, with credentials replaced by "***".
        elapsed: seconds from sending the request to reading the answer.
        message_count: messages in the batch.
        retry_count: 0 on a first attempt, n on the n-th retry.
    """

    url: str
    status: int
    reason: str
    headers: Mapping[str, str]
    body: str
    elapsed: float
    message_count: int
    retry_count: int


@dataclass(frozen=True)
class DeliveryFailureEvent:
    """Messages were not delivered: exactly what `on_error(error, messages)` receives.

    Attributes:
        error: why (`APIError`, `TransportError`, `QueueFullError`, `ClientClosedError`).
        messages: the messages as dicts (empty when a queue lost unreadable data).
        count: how many messages; equals `len(messages)` unless they were unreadable.
    """

    error: DeliveryError
    messages: list[dict[str, Any]]
    count: int


@dataclass(frozen=True)
class DropEvent:
    """Messages were dropped without being sent (counted in `stats().dropped[reason]`).

    Attributes:
        reason: the key in `stats().dropped`, e.g. "queue_full", "closed",
            "send_disabled", or a middleware's or the tracking plan's reason.
        count: how many messages.
        error: the reported error; None for a drop on purpose (send=False, middleware
            returning None), which is not reported to `on_error`.
        messages: the dropped messages as dicts, when known.
    """

    reason: str
    count: int
    error: DeliveryError | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DrainedEvent:
    """The queue became empty after a send: everything accepted so far has finished.

    Attributes:
        delivered: messages delivered since the client started.
        failed: messages reported failed since the client started.
    """

    delivered: int
    failed: int


@dataclass(frozen=True)
class CallAfterCloseEvent:
    """A call was made after `close_and_flush()`; the message is dropped ("closed").

    Attributes:
        message: the message the call built.
    """

    message: dict[str, Any]

    @property
    def type(self) -> str:
        """The call's type ("track", "identify", ...)."""
        return str(self.message.get("type", ""))


class Events:
    """The handlers of one client, by event name.

    Thread-safe: `on` and unsubscribing replace a tuple under a lock; emitting reads the
    tuple once, so a handler added or removed while an event is being delivered takes
    effect from the next event. Emitting sites test the attribute named after the event
    (e.g. `events.drop`) before building a payload, so an event nobody listens to costs
    one attribute read.
    """

    __slots__ = (
        "_lock", "call_after_close", "delivery_failure", "drained", "drop",
        "http_request", "http_response",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.http_request: tuple[Callable[[HttpRequestEvent], object], ...] = ()
        self.http_response: tuple[Callable[[HttpResponseEvent], object], ...] = ()
        self.delivery_failure: tuple[Callable[[DeliveryFailureEvent], object], ...] = ()
        self.drop: tuple[Callable[[DropEvent], object], ...] = ()
        self.drained: tuple[Callable[[DrainedEvent], object], ...] = ()
        self.call_after_close: tuple[Callable[[CallAfterCloseEvent], object], ...] = ()

    def on(self, name: str, handler: Callable[[Any], object]) -> Callable[[], None]:
        """Call `handler(payload)` on every `name` event; returns the unsubscribe callable.

        Raises `ConfigurationError` for an unknown name or a handler that is not
        callable. Unsubscribing is idempotent and removes this registration only.
        """
        if name not in EVENT_NAMES:
            raise ConfigurationError(
                f"unknown event {name!r}; expected one of: {', '.join(EVENT_NAMES)}"
            )
        if not callable(handler):
            raise ConfigurationError(f"the handler of {name!r} must be callable, got {handler!r}")

        # A fresh wrapper per registration: the same function registered twice is two
        # registrations, and each unsubscribe removes its own.
        def registered(payload: Any) -> object:
            return handler(payload)

        registered.__wrapped__ = handler  # type: ignore[attr-defined]
        with self._lock:
            setattr(self, name, (*getattr(self, name), registered))
        done = False

        def unsubscribe() -> None:
            nonlocal done
            with self._lock:
                if done:
                    return
                done = True
                setattr(self, name, tuple(h for h in getattr(self, name) if h is not registered))

        return unsubscribe

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held by a thread
        that does not exist here). The handlers stay registered."""
        self._lock = threading.Lock()

    def emit(self, name: EventName, payload: object) -> None:
        """Run every handler of `name` on this thread; their exceptions are logged."""
        for handler in getattr(self, name):
            try:
                handler(payload)
            except Exception:
                original = getattr(handler, "__wrapped__", handler)
                logger.exception("a handler of the %r event (%r) raised; ignored", name, original)


class EventSource:
    """Gives a class holding `_events: Events` the public, typed `on()`."""

    _events: Events

    @overload
    def on(
        self, name: Literal["http_request"], handler: Callable[[HttpRequestEvent], object]
    ) -> Callable[[], None]: ...
    @overload
    def on(
        self, name: Literal["http_response"], handler: Callable[[HttpResponseEvent], object]
    ) -> Callable[[], None]: ...
    @overload
    def on(
        self, name: Literal["delivery_failure"],
        handler: Callable[[DeliveryFailureEvent], object],
    ) -> Callable[[], None]: ...
    @overload
    def on(
        self, name: Literal["drop"], handler: Callable[[DropEvent], object]
    ) -> Callable[[], None]: ...
    @overload
    def on(
        self, name: Literal["drained"], handler: Callable[[DrainedEvent], object]
    ) -> Callable[[], None]: ...
    @overload
    def on(
        self, name: Literal["call_after_close"],
        handler: Callable[[CallAfterCloseEvent], object],
    ) -> Callable[[], None]: ...
    @overload
    def on(self, name: str, handler: Callable[[Any], object]) -> Callable[[], None]: ...

    def on(self, name: str, handler: Callable[[Any], object]) -> Callable[[], None]:
        """Call `handler(payload)` on every `name` event; returns the unsubscribe callable.

        Names: "http_request", "http_response", "delivery_failure", "drop", "drained",
        "call_after_close" (docs/observability.md lists their payloads and threads).
        The handler runs on the thread that produced the event; an exception it raises
        is logged and ignored. Thread-safe; never blocks. Raises `ConfigurationError` for
        an unknown name or a handler that is not callable.
        """
        return self._events.on(name, handler)


def redact_headers(headers: Mapping[str, str], secrets: tuple[str, ...]) -> dict[str, str]:
    """A copy of `headers` with credential headers and any of `secrets` replaced by "***"."""
    out: dict[str, str] = {}
    for key, value in headers.items():
        if key.lower() in _SECRET_HEADERS:
            # Keep the scheme ("Basic ***", "Bearer ***"): it tells which credential it was.
            scheme, _, rest = value.partition(" ")
            out[key] = f"{scheme} ***" if rest and key.lower().endswith("authorization") else "***"
            continue
        for secret in secrets:
            if secret:
                value = value.replace(secret, "***")
        out[key] = value
    return out
