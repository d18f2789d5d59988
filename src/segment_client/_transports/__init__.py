"""The Transport seam: what the consumer needs to send one batch once.

A transport performs one attempt and classifies its outcome: it returns on 2xx, raises
`APIError` for any other status and `TransportError` when no HTTP answer came. Retries,
threads, batching and deadlines above one attempt live in the sender.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from segment_client._exceptions import TransportError

__all__ = ["ConnectionDropped", "Transport"]


class ConnectionDropped(TransportError):
    """The server took the request and closed the connection without answering.

    It may be unable to handle something in the batch: past the retries the sender
    bisects the batch to find the message at fault. A custom transport may raise it.
    """


@runtime_checkable
class Transport(Protocol):
    """Sends one batch of encoded messages, once.

    Called by one thread at a time per batch, but possibly by several threads
    (`sync_mode`), so implementations must be thread-safe.
    """

    def send(
        self, batch: Sequence[bytes], *, retry_count: int = 0, timeout: float | None = None
    ) -> None:
        """Send `batch` (encoded messages, oldest first).

        `retry_count` is 0 on a first attempt and n on the n-th retry. `timeout` is the
        time left for this attempt in seconds (None: the transport's own limit); an
        attempt never runs past it. Raises `APIError` on a non-2xx answer,
        `TransportError` on no answer.
        """
        ...

    def close(self) -> None:
        """Release connections. Later sends may fail with TransportError."""
        ...
