"""A thread that follows the store, behind ingest, never in it.

Two feeds, one order. The store's listener hands over each committed batch's rows
(`on_rows`: a lock and a deque append on the ingest thread, no I/O, no waiting on the
follower), and the thread passes them to its sink in row-id order. When that feed cannot
be trusted to be complete (the follower starts on a store that already holds rows;
batches announced out of order by concurrent connections; more than `max_pending` rows
waiting; a sink error), the thread reads the store by row id instead until it has caught
up, then goes back to the listener's rows. So the sink trails the store by a lag that
`status()` reports in rows and seconds; a sink's error is reported there too and retried
after a pause, and ingest goes on regardless. Thread-safe.
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
    """What a follower feeds: `load` a chunk (oldest first), `status`, `close`.

    `status()` may run while `load` does (on another thread): it reads plain counters.
    """

    def load(self, records: Sequence[Record]) -> object: ...
    def close(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


class StoreFollower:
    """Feeds one sink from the store on a background thread named `name`. Thread-safe.

    `fetch(after_id, limit)` returns the stored records with a row id above `after_id`,
    oldest first, at most `limit`. `gather`: seconds to let the listener's rows pile up
    before a load (up to `chunk` of them), which adds at most that much lag. Wire
    `on_rows` / `on_clear` as the store's listener (or call `notify(last_id)` when there
    is none). A sink with a `clear()` method has
    it called after the store is cleared. `start_after`: the row id already loaded (a
    loader restarted where its predecessor stopped). `on_progress()`: called on the
    thread after every load attempt (success or failure), outside the locks.
    """

    def __init__(
        self,
        fetch: Fetch,
        sink: Sink,
        *,
        name: str,
        chunk: int = 2000,
        max_pending: int = 100_000,
        gather: float = 0.0,
        retry_wait: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        start_after: int = 0,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.sink = sink
        self.name = name
        self._fetch = fetch
        self._chunk = chunk
        self._max_pending = max_pending
        self._gather = gather
        self._retry_wait = retry_wait
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._sink_lock = threading.Lock()  # loads and reads of the sink, one at a time
        self._on_progress = on_progress
        self._loaded = start_after
        self._known = start_after
        # The listener's rows, contiguous after what the store reads covered; only used
        # while `_complete` (else the store is read by id).
        self._pending: deque[Record] = deque()
        self._complete = False
        self._poke = True  # look once at start: the store may hold rows already
        self._clearing = False
        self._clears = (0, 0)  # (asked for, done): wait_loaded waits for both to match
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

    # -- feeds (ingest threads) ---------------------------------------------------------

    def on_rows(self, rows: Sequence[Any]) -> None:
        """The store listener: one committed batch's rows (`id`, `received_at`,
        `duplicate`, `message`), oldest first. Quick; never blocks on the sink."""
        if not rows:
            return
        first, last = rows[0].id, rows[-1].id
        with self._lock:
            if last <= self._known:
                return  # announced late: the store reads cover it
            if (
                self._complete and first == self._known + 1
                and len(self._pending) + len(rows) <= self._max_pending
            ):
                self._pending.extend(
                    Record(r.id, r.received_at, r.message, r.duplicate) for r in rows
                )
            else:
                self._pending.clear()
                self._complete = False
            self._known = last
            self._marks.append((last, self._clock()))
            self._changed.notify_all()

    def on_clear(self) -> None:
        """The store listener: the store was cleared (the sink may forget its state)."""
        with self._lock:
            self._clearing = True
            self._clears = (self._clears[0] + 1, self._clears[1])
            self._pending.clear()
            self._complete = False
            self._changed.notify_all()

    def notify(self, last_id: int) -> None:
        """Rows up to `last_id` are committed in the store (read them from it)."""
        with self._lock:
            if last_id > self._known:
                self._known = last_id
                self._pending.clear()
                self._complete = False
                self._marks.append((last_id, self._clock()))
                self._changed.notify_all()

    # -- reads --------------------------------------------------------------------------

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
        status.update(self.sink.status())  # never waits for a load in progress
        return status

    def clears_applied(self) -> int:
        """How many `on_clear()` calls the sink has seen applied so far."""
        with self._lock:
            return self._clears[1]

    def wait_loaded(self, row_id: int, timeout: float | None = 10.0) -> bool:
        """Block until every row up to `row_id` is loaded and every clear applied (or
        `timeout`)."""
        with self._lock:
            return self._changed.wait_for(
                lambda: self._loaded >= row_id and self._clears[0] == self._clears[1], timeout
            )

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

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(
                    lambda: self._stopping or self._poke or self._clearing
                    or self._known > self._loaded
                )
                if self._stopping:
                    return
                if self._gather and self._complete and len(self._pending) < self._chunk:
                    # Let a few batches gather: fewer, larger loads cost ingest less.
                    self._changed.wait_for(
                        lambda: self._stopping or len(self._pending) >= self._chunk,
                        self._gather,
                    )
                    if self._stopping_now():
                        return
                clearing, self._clearing = self._clearing, False
                clears = self._clears[0]
                if clearing:  # the rows not loaded yet are gone with the store
                    self._loaded = max(self._loaded, self._known)
                    self._marks.clear()
                self._poke = False
                after = self._loaded
                records: list[Record] | None = None
                if self._complete and self._pending:
                    count = min(self._chunk, len(self._pending))
                    records = [self._pending.popleft() for _ in range(count)]
            from_store = records is None
            try:
                if clearing:
                    clear = getattr(self.sink, "clear", None)
                    if clear is not None:
                        with self._sink_lock:
                            clear()
                if records is None:
                    records = list(self._fetch(after, self._chunk))
                if records:
                    with self._sink_lock:
                        self.sink.load(records)
            except Exception as exc:  # noqa: BLE001 - reported in status(), retried
                self._failed(exc, clearing)
                self._progress()
                if self._stopping_after(self._retry_wait):
                    return
                continue
            with self._lock:
                self._error = None
                if clearing:
                    self._clears = (self._clears[0], clears)
                if records:
                    last = records[-1].row_id
                    self._loaded = last
                    self._known = max(self._known, last)
                    # A full chunk read from the store: there may be more.
                    self._poke = from_store and len(records) >= self._chunk
                    while self._marks and self._marks[0][0] <= last:
                        self._marks.popleft()
                elif from_store:
                    self._loaded = max(self._loaded, self._known)
                    self._marks.clear()
                if from_store and self._loaded >= self._known:
                    # Caught up: from here on the listener's rows are complete.
                    self._pending.clear()
                    self._complete = True
                self._changed.notify_all()
            self._progress()

    def _progress(self) -> None:
        if self._on_progress is not None:
            try:
                self._on_progress()
            except Exception:  # a broken report must not stop the loads
                logger.exception("collector: %s: progress report failed", self.name)

    def _failed(self, exc: Exception, clearing: bool) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if text != self._error:
            logger.error("collector: %s: %s", self.name, text)
        with self._lock:
            self._error = text
            self._clearing = self._clearing or clearing  # not applied: again next time
            self._pending.clear()  # the store has them: read it once the sink is back
            self._complete = False
            self._poke = True

    def _stopping_now(self) -> bool:
        return self._stopping  # a call: re-read after a wait (mypy narrows the attribute)

    def _stopping_after(self, seconds: float) -> bool:
        with self._lock:
            return self._changed.wait_for(lambda: self._stopping, seconds)


def store_source(store: Any) -> Fetch:
    """A `fetch` reading the collector's store by row id (its own lock; short reads)."""

    def fetch(after: int, limit: int) -> list[Record]:
        events, _ = store.events(after=after, limit=limit, oldest_first=True)
        return [Record(e["id"], e["receivedAt"], e["message"], e["duplicate"]) for e in events]

    return fetch
