"""Counters: the `ClientStats` snapshot, drop counts and flush tokens.

No threads, no I/O. The consumer owns one `DropCounts` and the `FlushToken`s of the
flushes waiting on it; `ClientStats` is what `Client.stats()` returns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClientStats", "DropCounts", "FlushToken"]


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of a client's message counts since it started (or since a fork).

    `queued == delivered + failed + queue_depth + in_flight` at any moment; messages in
    `dropped` were never queued (a message dropped by consumer-side middleware leaves
    `queued` for `dropped`). `violations` and `unplanned` count messages that broke the
    tracking plan or were not in it, whatever the policy did with them.
    """

    queued: int = 0
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    queue_depth: int = 0
    in_flight: int = 0
    batches_sent: int = 0
    violations: int = 0
    unplanned: int = 0
    #: Bytes of spool files held (Client(spool_dir=...)); 0 for the in-memory queue.
    spool_bytes: int = 0

    def __getitem__(self, name: str) -> Any:
        """`stats["delivered"]` works like `stats.delivered`."""
        if name.startswith("_") or name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict (for logging or JSON)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @property
    def dropped_total(self) -> int:
        """All dropped messages, whatever the reason."""
        return sum(self.dropped.values())


class FlushToken:
    """One pending flush: done when the consumer's finished count reaches `target`.

    `start` and `target` count messages finished (delivered, failed or dropped after
    queueing), in queue order; `failed` is set when one of them failed. Guarded by the
    consumer's lock.
    """

    __slots__ = ("failed", "start", "target")

    def __init__(self, start: int, target: int) -> None:
        self.start = start
        self.target = target
        self.failed = False


class DropCounts:
    """Messages dropped before they were queued, by reason. Thread-safe, never blocks
    beyond a short lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, reason: str, count: int = 1) -> int:
        """Count `count` drops for `reason`; returns the total for that reason."""
        with self._lock:
            total = self._counts.get(reason, 0) + count
            self._counts[reason] = total
            return total

    def snapshot(self) -> dict[str, int]:
        """A copy of the counts."""
        with self._lock:
            return dict(self._counts)
