"""The collector's SQLite store: accepted messages, rejected requests and live counters.

One connection guarded by one lock. Writes use group commit: every writing thread
queues its batch (messages plus the rejections it caused) and blocks; one of them at a
time commits everything queued so far in one transaction (WAL mode for a file), and
each returns once its batch is committed, so the collector answers 200 only for what is
stored while many connections share each commit. A transaction that fails is rolled
back and its batches retried one by one; a batch that still fails raises `StoreError`
to its own writer only, and the store keeps working. Counters live in memory (rebuilt
from the file when one is reopened) and change only after a commit, so `stats()` never
scans the table. Thread-safe.

Extension point: `Store.add_listener(on_rows, on_clear=None)`. After every committed
batch, `on_rows(rows)` gets that batch's `StoredRow`s (oldest first), in commit order,
outside the store's lock and before the batch's writer returns (so a read after a 200
sees what listeners did): a feature module (identity graph, routing, warehouse, usage
counters) follows ingest without touching it. A listener must be quick (hand heavy
work to its own thread) and must not write to the store; its exceptions are logged and
never reach ingest. `on_clear()` runs after `clear()`, in the same order. Listeners
are not called when nothing is persisted (`persist=False`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

from ._rows import (
    Listener,
    RejectionRow,
    StoredMessage,
    StoredRow,
    StoreError,
    Write,
    clean,
    event_rows,
    find_duplicates,
    text_id,
)

__all__ = ["Listener", "RejectionRow", "Store", "StoreError", "StoredMessage", "StoredRow"]

logger = logging.getLogger("segment_client.collector")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    duplicate INTEGER NOT NULL,
    type TEXT,
    event TEXT,
    user_id TEXT,
    anonymous_id TEXT,
    message_id TEXT,
    violations TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""

_EVENT_COLUMNS = "id, received_at, batch_id, duplicate, violations, message"



class Store:
    """Accepted messages and rejections in SQLite, plus in-memory counters. Thread-safe."""

    def __init__(self, path: str = ":memory:", *, persist: bool = True) -> None:
        self.path = path
        self.persist = persist  # False: count only (benchmarks); nothing is written
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if path != ":memory:":
            # A committed batch is in the file (the OS has it) when add_batch returns: it
            # survives the collector being killed. No fsync per commit or checkpoint: a
            # development store may lose its last batches to a power cut or an OS crash;
            # waiting for the disk on every batch would halve its throughput.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._recent: deque[tuple[int, int]] = deque()  # (second, messages) for 60 s
        # Group commit: queued writes, and whether a thread is committing (guarded by
        # the condition's own lock, never held while SQLite works).
        self._queue_cv = threading.Condition(threading.Lock())
        self._queue: list[Write] = []
        self._committing = False
        self._listeners: list[tuple[Listener, Callable[[], None] | None]] = []
        self._load_counters()

    def add_listener(
        self, on_rows: Listener, on_clear: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Call `on_rows(rows)` after each committed batch (and `on_clear()` after a
        clear); returns a function that removes the listener. Thread-safe."""
        entry = (on_rows, on_clear)
        with self._lock:
            self._listeners = [*self._listeners, entry]

        def remove() -> None:
            with self._lock:
                self._listeners = [e for e in self._listeners if e is not entry]

        return remove

    def _notify(self, rows: Sequence[StoredRow] | None) -> None:
        # Outside the data lock (reads go on); in commit order (one committer at a time).
        for on_rows, on_clear in self._listeners:
            try:
                if rows is not None:
                    on_rows(rows)
                elif on_clear is not None:
                    on_clear()
            except Exception:
                logger.exception("collector: store listener %r failed", on_rows)

    def _load_counters(self) -> None:
        db = self._db
        # Ids only grow, even across clear(), so a reader polling `after=` never misses.
        self._last_id = max(
            getattr(self, "_last_id", 0),
            db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0],
        )
        self.by_type: Counter[str] = Counter(
            dict(db.execute("SELECT type, COUNT(*) FROM events GROUP BY type").fetchall())
        )
        self.by_event: Counter[str] = Counter(
            dict(
                db.execute(
                    "SELECT event, COUNT(*) FROM events WHERE type = 'track' GROUP BY event"
                ).fetchall()
            )
        )
        self.total = sum(self.by_type.values())
        self.duplicates = db.execute("SELECT COUNT(*) FROM events WHERE duplicate").fetchone()[0]
        self.batches = db.execute("SELECT COUNT(DISTINCT batch_id) FROM events").fetchone()[0]
        self.with_violations = db.execute(
            "SELECT COUNT(*) FROM events WHERE violations != '[]'"
        ).fetchone()[0]
        self.rejected_requests = db.execute("SELECT COUNT(*) FROM rejections").fetchone()[0]
        self.seen: set[str] = {
            row[0]
            for row in db.execute("SELECT message_id FROM events WHERE message_id IS NOT NULL")
        }

    # -- writes -------------------------------------------------------------------------

    def add_batch(
        self, batch_id: str, received_at: str, messages: Sequence[StoredMessage],
        rejections: Sequence[RejectionRow] = (),
    ) -> tuple[int, int]:
        """Store one request's accepted messages and the rejections it caused, in one
        transaction committed before this returns. Returns (stored, duplicates).

        Blocks while other writers' batches commit alongside. Raises StoreError when it
        could not be committed (then nothing of it is kept).
        """
        write = Write(batch_id, received_at, messages, list(rejections))
        self._submit(write)
        return write.result

    def add_rejection(self, received_at: str, path: str, status: int, reason: str) -> None:
        """Record one rejected request (or rejected message) and why (committed)."""
        self.add_rejections([(received_at, path, status, reason)])

    def add_rejections(self, rows: Sequence[RejectionRow]) -> None:
        """Record many rejections with one insert (committed before this returns)."""
        self._submit(Write(None, "", (), list(rows)))

    def _submit(self, write: Write) -> None:
        cv = self._queue_cv
        with cv:
            self._queue.append(write)
            if self._committing:
                cv.notify_all()  # lets a waiter (a test) see the queue grow
            while not write.done and self._committing:
                cv.wait()
            if write.done:
                group: list[Write] = []
            else:
                self._committing = True
                group, self._queue = self._queue, []
        if group:
            try:
                self._commit(group)
            finally:
                with cv:
                    for item in group:
                        item.done = True
                    self._committing = False
                    cv.notify_all()
        if write.error is not None:
            raise StoreError(
                f"could not store the batch: {type(write.error).__name__}: {write.error}"
            ) from write.error

    def _commit(self, group: list[Write]) -> None:
        """Commit `group` in one transaction (one by one when that fails), then notify."""
        with self._lock:
            error = self._commit_locked(group)
            if error is not None:
                if len(group) == 1:
                    group[0].error = error
                else:
                    for write in group:
                        write.error = self._commit_locked([write])
            self.changed.notify_all()
        if self._listeners and self.persist:
            for write in group:
                if write.rows:
                    self._notify(write.rows)

    def _commit_locked(self, group: list[Write]) -> BaseException | None:
        """With the lock held: insert `group`, commit, then count it. Rolls back and
        returns the error instead when anything fails (counters untouched)."""
        seen = self.seen
        fresh: set[str] = set()
        next_id = self._last_id + 1
        new_events: list[Any] = []
        rejection_rows: list[RejectionRow] = []
        plans: list[tuple[Write, list[bool], int]] = []
        try:
            for write in group:
                messages = write.messages
                ids = [message.get("messageId") for message, _, _ in messages]
                if not all(type(i) is str for i in ids):
                    ids = [text_id(i) for i in ids]
                flags, _ = find_duplicates(ids, seen, fresh)
                plans.append((write, flags, next_id))
                if self.persist and messages:
                    new_events.extend(event_rows(write, flags, ids, next_id))
                    next_id += len(messages)
                rejection_rows.extend(
                    (received_at, clean(path), status, clean(reason))
                    for received_at, path, status, reason in write.rejections
                )
            if self.persist and (new_events or rejection_rows):
                db = self._db
                db.execute("BEGIN")
                if new_events:
                    db.executemany(
                        "INSERT INTO events (id, received_at, batch_id, duplicate, type,"
                        " event, user_id, anonymous_id, message_id, violations, message)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        new_events,
                    )
                if rejection_rows:
                    db.executemany(
                        "INSERT INTO rejections (received_at, path, status, reason)"
                        " VALUES (?, ?, ?, ?)",
                        rejection_rows,
                    )
                db.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - reported to the batch's writer
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            return exc
        # Committed: now the counters.
        seen |= fresh
        if self.persist:
            self._last_id = next_id - 1
        second = int(time.monotonic())
        for write, flags, first in plans:
            self.rejected_requests += len(write.rejections)
            messages = write.messages
            if not messages:
                continue
            count = len(messages)
            duplicate_count = sum(flags)
            kinds: dict[Any, int] = {}
            events: dict[Any, int] = {}
            for message, _, _ in messages:
                kind = message.get("type")
                kinds[kind] = kinds.get(kind, 0) + 1
                if kind == "track":
                    event = message.get("event")
                    events[event] = events.get(event, 0) + 1
            for kind, n in kinds.items():
                self.by_type[str(kind)] += n
            for event, n in events.items():
                self.by_event[str(event)] += n
            self.with_violations += sum(1 for _, _, violations in messages if violations)
            self.total += count
            self.duplicates += duplicate_count
            self.batches += 1
            if self._recent and self._recent[-1][0] == second:
                self._recent[-1] = (second, self._recent[-1][1] + count)
            else:
                self._recent.append((second, count))
            write.result = (count, duplicate_count)
            if self._listeners:
                write.rows = [
                    StoredRow(first + offset, write.received_at, write.batch_id or "",
                              duplicate, message, violations)
                    for offset, ((message, _, violations), duplicate)
                    in enumerate(zip(messages, flags, strict=True))
                ]
        return None

    def clear(self) -> None:
        """Forget everything: events, rejections and counters."""
        cv = self._queue_cv
        with cv:
            while self._committing:  # between two commits, so listeners see it in order
                cv.wait()
            self._committing = True
        try:
            with self._lock:
                self._db.execute("DELETE FROM events")
                self._db.execute("DELETE FROM rejections")
                self._recent.clear()
                self._load_counters()
                self.changed.notify_all()
            self._notify(None)
        finally:
            with cv:
                self._committing = False
                cv.notify_all()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reads --------------------------------------------------------------------------

    def events(
        self,
        *,
        type: str | None = None,
        event: str | None = None,
        user_id: str | None = None,
        q: str | None = None,
        after: int | None = None,
        limit: int | None = 100,
        oldest_first: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """Stored messages matching every given filter, newest first, and the last id."""
        where: list[str] = []
        args: list[Any] = []
        if type:
            where.append("type = ?")
            args.append(type)
        if event:
            where.append("event = ?")
            args.append(event)
        if user_id:
            where.append("(user_id = ? OR anonymous_id = ?)")
            args += [user_id, user_id]
        if q:
            where.append("instr(lower(message), lower(?)) > 0")
            args.append(q)
        if after is not None:
            where.append("id > ?")
            args.append(after)
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id " + ("ASC" if oldest_first else "DESC")
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
            last = self._last_id
        events = [
            {
                "id": row[0],
                "receivedAt": row[1],
                "batchId": row[2],
                "duplicate": bool(row[3]),
                "violations": json.loads(row[4]),
                "message": json.loads(row[5]),
            }
            for row in rows
        ]
        return events, last

    def rejections(
        self, *, after: int | None = None, limit: int | None = 100
    ) -> list[dict[str, Any]]:
        """Rejected requests, newest first."""
        sql = "SELECT id, received_at, path, status, reason FROM rejections"
        args: list[Any] = []
        if after is not None:
            sql += " WHERE id > ?"
            args.append(after)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            {"id": r[0], "receivedAt": r[1], "path": r[2], "status": r[3], "reason": r[4]}
            for r in rows
        ]

    def stats(self) -> dict[str, Any]:
        """Counters: totals, by type, by track event, duplicates, rejections, batches."""
        with self._lock:
            now = int(time.monotonic())
            while self._recent and self._recent[0][0] <= now - 60:
                self._recent.popleft()
            return {
                "total": self.total,
                "unique": len(self.seen),
                "duplicates": self.duplicates,
                "by_type": dict(sorted(self.by_type.items())),
                "by_event": dict(sorted(self.by_event.items(), key=lambda kv: (-kv[1], kv[0]))),
                "batches": self.batches,
                "rejected_requests": self.rejected_requests,
                "with_violations": self.with_violations,
                "messages_last_minute": sum(n for _, n in self._recent),
            }

    def wait(self, predicate: Callable[[Store], bool], timeout: float | None) -> bool:
        """Block until `predicate(self)` holds (checked on every change) or `timeout`."""
        with self._lock:
            return self.changed.wait_for(lambda: predicate(self), timeout)
