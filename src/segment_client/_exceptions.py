"""The exceptions of segment_client.

```
SegmentError(Exception)
├── ConfigurationError(SegmentError, ValueError)       raised by Client(...)
├── MessageError(SegmentError, ValueError)             raised by a call: missing ids, wrong types
│   └── MessageTooLargeError(MessageError)
├── MissingDependencyError(SegmentError, ImportError)  integration without its extra
└── DeliveryError(SegmentError)                        never raised; passed to on_error
    ├── APIError            non-2xx: status, body, retry_after, retryable
    ├── TransportError      connection, DNS, TLS, timeout
    ├── QueueFullError      dropped: queue at max_queue_size
    └── ClientClosedError   call after close_and_flush()
```

Only programmer errors (bad configuration, bad arguments) are raised into user code.
Delivery problems are instances of `DeliveryError` handed to `on_error`, logged on the
`segment_client` logger and counted in `Client.stats()`.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "ClientClosedError",
    "ConfigurationError",
    "DeliveryError",
    "MessageError",
    "MessageTooLargeError",
    "MissingDependencyError",
    "QueueFullError",
    "SegmentError",
    "TransportError",
]

# Statuses retried besides 5xx; 501 and 505 are 5xx but final (DESIGN.md section 5).
_RETRYABLE_4XX = frozenset({408, 410, 429, 460})
_FINAL_5XX = frozenset({501, 505})


class SegmentError(Exception):
    """Root of every exception this library defines."""


class ConfigurationError(SegmentError, ValueError):
    """An option given to `Client(...)` (or read from the environment) is invalid."""


class MessageError(SegmentError, ValueError):
    """A call (`track`, `identify`, ...) got arguments that cannot form a valid message."""


class MessageTooLargeError(MessageError):
    """The encoded message is over the API's 32 KB per-message limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"message is {size} bytes encoded, over the {limit} byte limit per message; "
            "send fewer or smaller properties/traits"
        )
        self.size = size
        self.limit = limit


class MissingDependencyError(SegmentError, ImportError):
    """An optional integration was imported without the extra that provides its framework."""


class DeliveryError(SegmentError):
    """A message was not delivered. Never raised into user code: passed to `on_error`."""


class APIError(DeliveryError):
    """The collector answered with a non-2xx status.

    Attributes:
        status: the HTTP status code.
        body: the response body (truncated to 1,000 characters).
        retry_after: seconds from a `Retry-After` header, when one was given.
    """

    def __init__(self, status: int, body: str = "", retry_after: float | None = None) -> None:
        body = body[:1000]
        super().__init__(f"HTTP {status}: {body}" if body else f"HTTP {status}")
        self.status = status
        self.body = body
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Whether the retry policy sends the batch again after this status."""
        if 500 <= self.status <= 599:
            return self.status not in _FINAL_5XX
        return self.status in _RETRYABLE_4XX


class TransportError(DeliveryError):
    """The request did not get an HTTP answer: connection refused or reset, DNS, TLS, timeout."""


class QueueFullError(DeliveryError):
    """The message was dropped because the queue held `max_queue_size` messages."""


class ClientClosedError(DeliveryError):
    """The message was rejected, or left undelivered, because the client was closed."""
