"""The collector's SQLite store: accepted messages, rejected requests and live counters.

One connection guarded by one lock (SQLite serialises writers anyway); a batch is
written with one `executemany` and one commit. Counters live in memory (rebuilt from
the file when one is reopened), so `stats()` never scans the table. Thread-safe.

Extension point: `Store.add_listener(on_rows, on_clear=None)`. After every committed
batch, `on_rows(rows)` gets that batch's `StoredRow`s (oldest first), on the thread
that stored them, after the commit and outside the store's lock: a feature module
(identity graph, routing, warehouse, usage counters) follows ingest without touching
it. A listener must be quick (hand heavy work to its own thread) and must not call
back into the store's writes; its exceptions are logged and never reach ingest.
`on_clear()` runs after `clear()`. Listeners are not called when nothing is persisted
(`persist=False`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

__all__ = ["Listener", "Store", "StoredMessage", "StoredRow"]

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


# One accepted message, ready to insert: the parsed form, its JSON text, its violations.
# A plain tuple: the store handles ~100,000 of them a second.
StoredMessage = tuple[dict[str, Any], str, list[str]]


@dataclass(frozen=True)
class StoredRow:
    """One committed message as listeners see it (the `message` dict is shared: read it,
    never modify it)."""

    id: int
    received_at: str
    batch_id: str
    duplicate: bool
    message: dict[str, Any]
    violations: list[str]


Listener = Callable[[Sequence[StoredRow]], None]


def _text_id(value: Any) -> str | None:
    return value if value is None or type(value) is str else str(value)


class Store:
    """Accepted messages and rejections in SQLite, plus in-memory counters. Thread-safe."""

    def __init__(self, path: str = ":memory:", *, persist: bool = True) -> None:
        self.path = path
        self.persist = persist  # False: count only (benchmarks); nothing is written
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if path != ":memory:":
            # A development store: losing the last batch on a power cut is acceptable,
            # waiting for fsync on every batch is not.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._recent: deque[tuple[int, int]] = deque()  # (second, messages) for 60 s
        # Batches answered but not yet stored (see hold()), by ticket.
        self._issued = 0
        self._pending: set[int] = set()
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
        # Outside the lock: a slow listener delays only the thread that stored the batch.
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

    def hold(self) -> int:
        """Announce a batch that will be stored soon; reads from now on wait for it.

        Returns a ticket for `release`, which must follow (in a `finally`).
        """
        with self._lock:
            self._issued += 1
            self._pending.add(self._issued)
            return self._issued

    def release(self, ticket: int) -> None:
        """The batch announced with `ticket` is stored (or failed): reads may go on."""
        with self._lock:
            self._pending.discard(ticket)
            self.changed.notify_all()

    def _settle(self) -> None:
        """With the lock held: wait for the batches announced before this call.

        Only those: batches announced later do not hold a reader back, so busy
        connections cannot starve it.
        """
        if self._pending:
            target = self._issued
            self.changed.wait_for(lambda: not self._pending or min(self._pending) > target)

    def add_batch(
        self, batch_id: str, received_at: str, messages: Sequence[StoredMessage]
    ) -> tuple[int, int]:
        """Store one accepted request's messages. Returns (stored, duplicates)."""
        ids: list[str | None] = []
        kinds: dict[Any, int] = {}
        events: dict[Any, int] = {}
        for message, _, _ in messages:
            message_id = message.get("messageId")
            if message_id is not None and type(message_id) is not str:
                message_id = str(message_id)
            ids.append(message_id)
            kind = message.get("type")
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "track":
                event = message.get("event")
                events[event] = events.get(event, 0) + 1
        count = len(messages)
        with_violations = sum(1 for _, _, violations in messages if violations)
        first = 0
        with self._lock:
            seen = self.seen
            new = {message_id for message_id in ids if message_id is not None}
            if len(new) == count and seen.isdisjoint(new):
                # The usual case, checked in C: no id repeats within the batch or before.
                flags = [False] * count
                duplicates = 0
                seen |= new
            else:
                flags = []
                duplicates = 0
                for message_id in ids:
                    duplicate = message_id is not None and message_id in seen
                    if message_id is not None:
                        seen.add(message_id)
                    duplicates += duplicate
                    flags.append(duplicate)
            for kind, n in kinds.items():
                self.by_type[str(kind)] += n
            for event, n in events.items():
                self.by_event[str(event)] += n
            if self.persist:
                first = self._last_id + 1
                self._last_id += count
                # Columns built by comprehensions and zipped in C: cheaper than a tuple
                # expression per row.
                kinds_column = [message.get("type") for message, _, _ in messages]
                rows = list(zip(
                    range(first, first + count),
                    repeat(received_at),
                    repeat(batch_id),
                    flags,
                    kinds_column,
                    [
                        message.get("event") if kind == "track" else None
                        for (message, _, _), kind in zip(messages, kinds_column, strict=True)
                    ],
                    [_text_id(message.get("userId")) for message, _, _ in messages],
                    [_text_id(message.get("anonymousId")) for message, _, _ in messages],
                    ids,
                    [json.dumps(v) if v else "[]" for _, _, v in messages]
                    if with_violations else repeat("[]"),
                    [text for _, text, _ in messages],
                ))
                # One transaction per batch (autocommit would make one per row).
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO events (id, received_at, batch_id, duplicate, type, event,"
                    " user_id, anonymous_id, message_id, violations, message)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            self.with_violations += with_violations
            self.total += count
            self.duplicates += duplicates
            self.batches += 1
            second = int(time.monotonic())
            if self._recent and self._recent[-1][0] == second:
                self._recent[-1] = (second, self._recent[-1][1] + count)
            else:
                self._recent.append((second, count))
            self.changed.notify_all()
            listeners = self._listeners
        if listeners and self.persist:
            self._notify([
                StoredRow(first + offset, received_at, batch_id, duplicate, message, violations)
                for offset, ((message, _, violations), duplicate)
                in enumerate(zip(messages, flags, strict=True))
            ])
        return count, duplicates

    def add_rejection(self, received_at: str, path: str, status: int, reason: str) -> None:
        """Record one rejected request (or rejected message) and why."""
        with self._lock:
            self._db.execute(
                "INSERT INTO rejections (received_at, path, status, reason) VALUES (?, ?, ?, ?)",
                (received_at, path, status, reason),
            )
            self.rejected_requests += 1
            self.changed.notify_all()

    def clear(self) -> None:
        """Forget everything: events, rejections and counters."""
        with self._lock:
            self._settle()
            self._db.execute("DELETE FROM events")
            self._db.execute("DELETE FROM rejections")
            self._recent.clear()
            self._load_counters()
            self.changed.notify_all()
        self._notify(None)

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
            self._settle()
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
            self._settle()
            rows = self._db.execute(sql, args).fetchall()
        return [
            {"id": r[0], "receivedAt": r[1], "path": r[2], "status": r[3], "reason": r[4]}
            for r in rows
        ]

    def stats(self) -> dict[str, Any]:
        """Counters: totals, by type, by track event, duplicates, rejections, batches."""
        with self._lock:
            self._settle()
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
