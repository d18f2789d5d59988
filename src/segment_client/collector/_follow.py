"""A thread that follows the store by row id, behind ingest, never in it.

Ingest only calls `notify(last_id)` after a committed batch (a lock, a comparison and a
`notify`: no I/O, no waiting on the follower). The thread reads new rows from the store
in chunks and hands each chunk to its sink (the warehouse loads it in one transaction,
the usage counter counts it), so the sink trails the store by a lag that `status()`
reports in rows and seconds. A sink's error is reported there too and retried after a
pause; ingest goes on regardless. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ._records import Record

__all__ = ["Fetch", "Sink", "StoreFollower", "store_source"]

logger = logging.getLogger("segment_client.collector")

Fetch = Callable[[int, int], Sequence[Record]]


class Sink(Protocol):
    """What a follower feeds: `load` a chunk (oldest first), `close` at the end."""

    def load(self, records: Sequence[Record]) -> object: ...
    def close(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


class StoreFollower:
    """Feeds one sink from the store on a background thread named `name`. Thread-safe.

    `fetch(after_id, limit)` returns the stored records with a row id above `after_id`,
    oldest first, at most `limit`.
    """

    def __init__(
        self,
        fetch: Fetch,
        sink: Sink,
        *,
        name: str,
        chunk: int = 2000,
        retry_wait: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.name = name
        self._fetch = fetch
        self._chunk = chunk
        self._retry_wait = retry_wait
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._sink_lock = threading.Lock()  # loads and reads of the sink, one at a time
        self._loaded = 0
        self._known = 0
        self._poke = True  # look once at start: the store may hold rows already
        self._marks: deque[tuple[int, float]] = deque()  # (row id, when it was committed)
        self._error: str | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def notify(self, last_id: int) -> None:
        """Rows up to `last_id` are committed in the store. Never blocks on the warehouse."""
        with self._lock:
            if last_id > self._known:
                self._known = last_id
                self._marks.append((last_id, self._clock()))
                self._changed.notify_all()

    def status(self) -> dict[str, Any]:
        """Where the sink stands: rows and seconds behind the store, its error, its own."""
        with self._lock:
            lag_rows = max(self._known - self._loaded, 0)
            lag_seconds = self._clock() - self._marks[0][1] if self._marks and lag_rows else 0.0
            status = {
                "loaded_id": self._loaded,
                "store_id": self._known,
                "lag_rows": lag_rows,
                "lag_seconds": round(max(lag_seconds, 0.0), 3),
                "error": self._error,
            }
        with self._sink_lock:
            status.update(self.sink.status())
        return status

    def wait_loaded(self, row_id: int, timeout: float | None = 10.0) -> bool:
        """Block until every row up to `row_id` is loaded (or `timeout`)."""
        with self._lock:
            return self._changed.wait_for(lambda: self._loaded >= row_id, timeout)

    def read(self, fn: Callable[[Any], Any]) -> Any:
        """`fn(sink)` between two loads (blocks while one runs): a consistent read."""
        with self._sink_lock:
            return fn(self.sink)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (after the chunk in progress) and close the sink."""
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._sink_lock:
            self.sink.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(
                    lambda: self._stopping or self._poke or self._known > self._loaded
                )
                if self._stopping:
                    return
                self._poke = False
                after = self._loaded
            try:
                records = self._fetch(after, self._chunk)
                if records:
                    with self._sink_lock:
                        self.sink.load(records)
            except Exception as exc:  # noqa: BLE001 - reported in status(), retried
                text = f"{type(exc).__name__}: {exc}"
                if text != self._error:
                    logger.error("collector: %s: %s", self.name, text)
                with self._lock:
                    self._error = text
                    self._poke = True
                    if self._changed.wait_for(lambda: self._stopping, self._retry_wait):
                        return
                continue
            with self._lock:
                self._error = None
                if records:
                    last = records[-1].row_id
                    self._loaded = last
                    self._known = max(self._known, last)
                    # A full chunk: there may be more than the store has announced.
                    self._poke = len(records) >= self._chunk
                    while self._marks and self._marks[0][0] <= last:
                        self._marks.popleft()
                else:
                    self._loaded = max(self._loaded, self._known)
                    self._marks.clear()
                self._changed.notify_all()



def store_source(store: Any) -> Fetch:
    """A `fetch` reading the collector's store by row id (its own lock; short reads)."""

    def fetch(after: int, limit: int) -> list[Record]:
        events, _ = store.events(after=after, limit=limit, oldest_first=True)
        return [Record(e["id"], e["receivedAt"], e["message"], e["duplicate"]) for e in events]

    return fetch
