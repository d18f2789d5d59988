"""The queue seam between callers and the consumer, and its in-memory implementation.

The consumer only talks to a `MessageQueue`: put encoded messages, take the next batch,
acknowledge it once it is finished (delivered or reported failed), read the depth. The
on-disk spool is a second implementation of the same protocol. What differs between
queues (keep retrying past the budget, keep messages at close) is the queue's `policy`,
never a branch on the kind of queue in the consumer.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from ._batch import count_fitting
from ._exceptions import DeliveryError

__all__ = ["MemoryQueue", "MessageQueue", "QueueLoss", "QueuePolicy"]


@dataclass(frozen=True)
class QueuePolicy:
    """What the consumer does with a queue's messages when delivery is hard.

    Attributes:
        keep_retrying: past the retry and rate-limit budgets, keep the batch and retry
            slowly instead of reporting it failed (a queue that survives the process).
        keep_on_close: at a close deadline, unfinished messages stay in the queue for the
            next process instead of being reported failed.
    """

    keep_retrying: bool = False
    keep_on_close: bool = False


@dataclass(frozen=True)
class QueueLoss:
    """Messages a queue lost on its own (e.g. unreadable data in a spool file)."""

    reason: str  #: the drop reason counted in stats, e.g. "spool_corrupt"
    error: DeliveryError
    count: int
    queued: bool  #: True: they were counted in `depth()` before


class MessageQueue(Protocol):
    """What the consumer needs from a queue. Implementations are thread-safe.

    `take`, `ack`, `dead_letter` and `losses` are called by the consumer only (one
    batch at a time); `put` by any thread. No method calls back into the consumer.
    """

    policy: QueuePolicy

    def put(self, data: bytes) -> int:
        """Append one encoded message. Never blocks.

        Returns the depth after the append, or 0 when the message was not accepted
        (the queue is full); the caller reports the drop.
        """
        ...

    def rejection(self) -> tuple[str, str]:
        """Why the last `put` returned 0: (the drop reason counted in stats, a message)."""
        ...

    def take(self, max_count: int, max_bytes: int) -> list[bytes]:
        """The oldest messages that fit the limits, oldest first (empty when none).

        The messages are owned by the consumer until `ack`; a queue that survives
        crashes keeps them until then.
        """
        ...

    def ack(self, count: int) -> None:
        """The first `count` messages of the last `take` are finished."""
        ...

    def dead_letter(self, data: bytes, error: DeliveryError) -> None:
        """A taken message found undeliverable (already reported by the consumer).

        Called before the `ack` that passes it. A spool keeps it in a dead-letter file;
        the in-memory queue does nothing.
        """
        ...

    def losses(self) -> list[QueueLoss]:
        """Messages lost on the queue's own since the last call (drained by the consumer
        on its own thread)."""
        ...

    def depth(self) -> int:
        """Messages waiting, not counting those taken and not yet acknowledged."""
        ...

    def disk_bytes(self) -> int:
        """Bytes the queue holds on disk (0 for a queue in memory)."""
        ...

    def close(self, timeout: float | None = None) -> None:
        """Release resources (files, threads) within `timeout` seconds (None: no bound).

        Called once, at client close.
        """
        ...


class MemoryQueue:
    """A bounded FIFO in memory. `put` drops (returns 0) at `max_size`; never blocks."""

    policy = QueuePolicy()

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

    def dead_letter(self, data: bytes, error: DeliveryError) -> None:
        pass  # reported by the consumer; nothing in memory outlives the process

    def losses(self) -> list[QueueLoss]:
        return []  # nothing in memory is ever lost on its own

    def depth(self) -> int:
        return len(self._items)

    def close(self, timeout: float | None = None) -> None:
        self._items.clear()

    def rejection(self) -> tuple[str, str]:
        return "queue_full", "the queue is full; the message was dropped"

    def disk_bytes(self) -> int:
        return 0

