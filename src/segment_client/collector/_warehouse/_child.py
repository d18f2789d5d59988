"""The warehouse loader process: `python -m segment_client.collector._warehouse._child`.

Started by `WarehouseProcess`, never by hand. Its stdin and stdout are framed pickle
connections to the collector (the parent: a process trusting its own child). The first
message names the warehouse URL (not on the command line, where other users could read
its password), the store's SQLite file and the row id already loaded; then:

- parent to child: `("rows", last_id)` (rows up to `last_id` are committed in the store),
  `("clear",)`, `("read", request_id, what, sql, args)` (`what`: "query" or "schema");
- child to parent: `("ready",)` or `("failed", text)` once, then `("progress", status,
  clears_applied)` after every load attempt and `("reply", request_id, ok, value)`.

The child reads the store by row id from its own connection (WAL lets it read while the
collector writes), loads with a `StoreFollower` thread, and runs at a lower priority
(nice 10) so ingest keeps the CPU first. End of its stdin (the collector closed it, or
died) ends it. Anything printed goes to stderr: stdout carries the connection.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from segment_client.collector._follow import StoreFollower
from segment_client.collector._records import Record

from ._load import Warehouse

__all__ = ["main"]

try:
    import orjson

    _loads: Any = orjson.loads
except ModuleNotFoundError:  # the `fast` extra is optional
    _loads = json.loads

NICE = 10


def store_fetch(path: str) -> Any:
    """`fetch(after, limit)` over the store's SQLite file (the Store's `events` table)."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)

    def fetch(after: int, limit: int) -> list[Record]:
        rows = db.execute(
            "SELECT id, received_at, duplicate, message FROM events WHERE id > ?"
            " ORDER BY id LIMIT ?", (after, limit),
        ).fetchall()
        return [Record(i, at, _loads(text), bool(dup)) for i, at, dup, text in rows]

    return fetch


def _read(what: str, sql: str, args: list[Any], warehouse: Warehouse) -> Any:
    return warehouse.schema() if what == "schema" else warehouse.query(sql, args)


def main() -> None:
    """Serve one collector until its connection ends (see the module docstring)."""
    # The connection gets stdout's pipe; stray prints land on stderr instead.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    inbox = Connection(os.dup(0), writable=False)
    outbox = Connection(out_fd, readable=False)
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            outbox.send(message)

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        _, url, store_path, after, options = inbox.recv()
    except EOFError:
        return
    if hasattr(os, "nice"):
        os.nice(NICE)
    try:
        warehouse = Warehouse(url, share_gil=False)
        fetch = store_fetch(store_path)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which retries
        send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    follower: StoreFollower

    def progress() -> None:
        send(("progress", follower.status(), follower.clears_applied()))

    follower = StoreFollower(fetch, warehouse, name="segment_client.collector.warehouse",
                             start_after=after, on_progress=progress, **options)
    send(("ready",))
    follower.start()
    try:
        while True:
            try:
                message = inbox.recv()
            except (EOFError, OSError):
                return  # the collector is gone or done: so is its loader
            if message[0] == "rows":
                follower.notify(message[1])
            elif message[0] == "clear":
                follower.on_clear()
            elif message[0] == "read":
                _, request, what, sql, args = message
                try:
                    value = follower.read(functools.partial(_read, what, sql, args))
                    send(("reply", request, True, value))
                except Exception as exc:  # noqa: BLE001 - the reader's error, not ours
                    send(("reply", request, False, f"{type(exc).__name__}: {exc}"))
    finally:
        follower.close()


if __name__ == "__main__":
    main()
