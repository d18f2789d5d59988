"""Usage counted when it is read, never during ingest.

`CountOnRead.read(fn)` first counts what was stored since the last read (reading the
store by row id, in chunks), then calls `fn(counter)`. Ingest does no usage work at all:
the cost is paid by whoever looks (the Usage view, `/v1/usage`, `collector report`), in
large chunks. The store's row ids only grow, even across a clear, so each stored message
is counted once; a clear resets the counts. Thread-safe (one lock around catch-up and
reads; a clear waits for a catch-up in progress).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from segment_client.collector._follow import Fetch

from ._counter import UsageCounter

__all__ = ["CountOnRead"]

T = TypeVar("T")


class CountOnRead:
    """A `UsageCounter` brought up to date with the store on every read. Thread-safe."""

    def __init__(self, fetch: Fetch, counter: UsageCounter, *, chunk: int = 5000) -> None:
        self.counter = counter
        self._fetch = fetch
        self._chunk = chunk
        self._fed = 0  # the last row id counted
        self._lock = threading.Lock()

    def read(self, fn: Callable[[UsageCounter], T]) -> T:
        """Count what is new in the store, then `fn(counter)`; blocks while counting."""
        with self._lock:
            while True:
                records = self._fetch(self._fed, self._chunk)
                if records:
                    self.counter.load(records)
                    self._fed = records[-1].row_id
                if len(records) < self._chunk:
                    break
            return fn(self.counter)

    def on_rows(self, rows: Sequence[Any]) -> None:
        """The store listener's batch: nothing to do (rows are read when needed)."""

    def on_clear(self) -> None:
        """The store listener: the store was cleared, so are the counts."""
        with self._lock:
            self.counter.clear()
