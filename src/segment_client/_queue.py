"""The queue seam between callers and the consumer, and its in-memory implementation.

The consumer only talks to a `MessageQueue`: put encoded messages, take the next batch,
acknowledge it once it is finished (delivered or reported failed), read the depth. The
on-disk spool is a second implementation of the same protocol.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from ._batch import count_fitting
from ._exceptions import DeliveryError

__all__ = ["LossReporter", "MemoryQueue", "MessageQueue", "QueueLoss", "QueuePolicy"]


@dataclass(frozen=True)
class QueuePolicy:
    """What a queue asks of the consumer beyond the in-memory behaviour."""

    #: Past the retry/rate-limit budget keep the batch and retry slowly instead of
    #: reporting it failed.
    keep_retrying: bool = False
    #: At a close deadline unfinished messages stay in the queue for the next process
    #: instead of failing.
    keep_on_close: bool = False


@dataclass(frozen=True)
class QueueLoss:
    """Messages a queue lost on its own (a spool's unreadable data)."""

    reason: str  # the drop reason, e.g. "spool_corrupt"
    error: DeliveryError
    count: int
    queued: bool  # True: they were counted in depth() before

#: `reporter(reason, error, count, queued)`: messages a queue lost on its own (a spool's
#: unreadable data). `queued` is True when they were counted in `depth()` before.
LossReporter = Callable[[str, DeliveryError, int, bool], None]


class MessageQueue(Protocol):
    """What the consumer needs from a queue. Implementations are thread-safe."""

    #: True when messages survive the process (a spool): the consumer then keeps
    #: retrying retryable failures instead of reporting them once the budget is spent.
    durable: bool

    def put(self, data: bytes) -> int:
        """Append one encoded message. Never blocks.

        Returns the depth after the append, or 0 when the message was not accepted
        (the queue is full); the caller reports the drop.
        """
        ...

    def take(self, max_count: int, max_bytes: int) -> list[bytes]:
        """The oldest messages that fit the limits, oldest first (empty when none).

        Called by the consumer only. The messages are owned by the consumer until
        `ack`; a queue that survives crashes keeps them until then.
        """
        ...

    def ack(self, count: int) -> None:
        """The first `count` messages of the last `take` are finished."""
        ...

    def depth(self) -> int:
        """Messages waiting, not counting those taken and not yet acknowledged."""
        ...

    def close(self) -> None:
        """Release resources (files, locks). Called once, at client close."""
        ...

    def rejection(self) -> tuple[str, str]:
        """Why the last `put` returned 0: (the drop reason counted in stats, a message)."""
        ...

    def disk_bytes(self) -> int:
        """Bytes the queue holds on disk (0 for a queue in memory)."""
        ...

    def attach(self, reporter: LossReporter) -> None:
        """Called once by the consumer: where to report messages the queue itself lost."""
        ...


class MemoryQueue:
    """A bounded FIFO in memory. `put` drops (returns 0) at `max_size`; never blocks."""

    durable = False

    def __init__(self, max_size: int) -> None:
        self._items: deque[bytes] = deque()
        self._max_size = max_size
        self._lock = threading.Lock()

    def put(self, data: bytes) -> int:
        items = self._items
        with self._lock:
            depth = len(items)
            if depth >= self._max_size:
                return 0
            items.append(data)
            return depth + 1

    def take(self, max_count: int, max_bytes: int) -> list[bytes]:
        items = self._items
        with self._lock:
            count = count_fitting(map(len, islice(items, max_count)), max_count, max_bytes)
            return [items.popleft() for _ in range(count)]

    def ack(self, count: int) -> None:
        # Taken messages already left the deque; the consumer holds them until finished.
        pass

    def depth(self) -> int:
        return len(self._items)

    def close(self) -> None:
        self._items.clear()

    def rejection(self) -> tuple[str, str]:
        return "queue_full", "the queue is full; the message was dropped"

    def disk_bytes(self) -> int:
        return 0

    def attach(self, reporter: LossReporter) -> None:
        pass  # nothing in memory is ever lost on its own
