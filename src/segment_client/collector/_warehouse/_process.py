"""`WarehouseProcess`: the warehouse loaded by a process of its own, off the collector's GIL.

The collector process only keeps count: the store's listener records the last committed
row id (a lock and an integer, on the ingest thread), and a writer thread tells the
loader process about it, coalescing many batches into one message. The loader process
(`_child`) reads the rows from the store's SQLite file itself, loads them at a lower
priority, and reports its progress, which `status()` turns into the lag. Its death is
noticed at once (its pipe ends), reported in `status()` and answered by a new process
after `retry_wait`, which carries on from the last row reported loaded (reloading a row
is harmless: a repeated messageId is skipped, `users` upserts replay in order). The
loader process ends when its stdin ends, so it never outlives the collector, even one
killed with SIGKILL. Thread-safe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import segment_client

from ._load import Warehouse

__all__ = ["WarehouseProcess"]

THREAD_PREFIX = "segment_client.collector.warehouse-process"


class WarehouseProcess:
    """Loads the store's SQLite file into one warehouse from a child process.

    The URL is opened once here (then closed), so a bad URL or an unreachable database
    fails in the constructor, before the collector serves, as with `WarehouseLoader`.
    """

    def __init__(
        self,
        url: str,
        store_path: str,
        *,
        chunk: int = 2000,
        gather: float = 0.05,
        retry_wait: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        Warehouse(url).close()
        self._url = url
        self._store_path = os.path.abspath(store_path)
        self._options = {"chunk": chunk, "gather": gather, "retry_wait": retry_wait}
        self._retry_wait = retry_wait
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._known = 0
        self._loaded = 0
        self._marks: deque[tuple[int, float]] = deque()  # (row id, when committed)
        # What the writer thread owes the child, in order: ("rows", id) / ("clear",).
        self._outbox: deque[tuple[Any, ...]] = deque()
        self._clears_asked = 0
        self._clears_base = 0  # clears asked before the current child started
        self._clears_done = 0  # reported by the current child
        self._child_status: dict[str, Any] = {}
        self._child_error: str | None = None
        self._open_failure: str | None = None  # what the current child could not open
        self._exit: str | None = None  # how the last child ended, when it crashed
        self._restarts = 0
        self._replies: dict[int, tuple[bool, Any]] = {}
        self._requests = 0
        self._stopping = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_child: Connection | None = None
        self._from_child: Connection | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the loader process and its two threads (idempotent)."""
        with self._lock:
            if self._threads:
                return
            self._spawn_locked()
            for name, target in (("reader", self._read_loop), ("writer", self._write_loop)):
                thread = threading.Thread(target=target, name=f"{THREAD_PREFIX}-{name}",
                                          daemon=True)
                self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """End the loader process (its stdin closed: it stops after the chunk in
        progress) and the threads; blocks up to about `timeout`."""
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
            proc, to_child = self._proc, self._to_child
            self._to_child = None
        if to_child is not None:
            to_child.close()
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in self._threads:
            thread.join(timeout)

    @property
    def pid(self) -> int | None:
        """The loader process's id (None before `start`)."""
        with self._lock:
            return self._proc.pid if self._proc is not None else None

    # -- feeds (ingest threads) ---------------------------------------------------------

    def on_rows(self, rows: Sequence[Any]) -> None:
        """The store listener: only the last row id is kept. Quick; never blocks."""
        if rows:
            self.notify(rows[-1].id)

    def notify(self, last_id: int) -> None:
        """Rows up to `last_id` are committed in the store."""
        with self._lock:
            if last_id <= self._known:
                return
            self._known = last_id
            self._marks.append((last_id, self._clock()))
            if self._outbox and self._outbox[-1][0] == "rows":
                self._outbox[-1] = ("rows", last_id)
            else:
                self._outbox.append(("rows", last_id))
            self._changed.notify_all()

    def on_clear(self) -> None:
        """The store listener: the store was cleared (rows not loaded yet are gone)."""
        with self._lock:
            self._clears_asked += 1
            self._outbox.append(("clear",))
            self._changed.notify_all()

    # -- reads --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Rows and seconds behind the store, the error, the warehouse's counters and
        the loader process (`pid`, `restarts`, `last_exit`)."""
        with self._lock:
            lag_rows = max(self._known - self._loaded, 0)
            lag_seconds = self._clock() - self._marks[0][1] if self._marks and lag_rows else 0.0
            status: dict[str, Any] = {
                "loaded_id": self._loaded,
                "store_id": self._known,
                "lag_rows": lag_rows,
                "lag_seconds": round(max(lag_seconds, 0.0), 3),
                "error": self._child_error,
            }
            for key in ("url", "rows_written", "conversion_losses", "tables"):
                if key in self._child_status:
                    status[key] = self._child_status[key]
            status["process"] = {
                "pid": self._proc.pid if self._proc is not None else None,
                "restarts": self._restarts,
                "last_exit": self._exit,
            }
        return status

    def wait_loaded(self, row_id: int, timeout: float | None = 10.0) -> bool:
        """Block until every row up to `row_id` is loaded and every clear applied (or
        `timeout`)."""
        with self._lock:
            return self._changed.wait_for(
                lambda: self._loaded >= row_id
                and self._clears_base + self._clears_done >= self._clears_asked,
                timeout,
            )

    def query(self, sql: str, args: Sequence[Any] = (), timeout: float = 30.0
              ) -> list[tuple[Any, ...]]:
        """Run a read query in the loader process between two loads (blocks).

        Raises RuntimeError when the loader process cannot answer (down, or `timeout`).
        """
        result: list[tuple[Any, ...]] = self._ask("query", sql, list(args), timeout)
        return result

    def schema(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Every table with its columns and row count (see `query` for errors)."""
        result: list[dict[str, Any]] = self._ask("schema", "", [], timeout)
        return result

    def _ask(self, what: str, sql: str, args: list[Any], timeout: float) -> Any:
        with self._lock:
            self._requests += 1
            request = self._requests
            self._outbox.append(("read", request, what, sql, args))
            self._changed.notify_all()
            if not self._changed.wait_for(
                lambda: request in self._replies or self._stopping, timeout
            ) or request not in self._replies:
                raise RuntimeError(f"the warehouse loader process did not answer: "
                                   f"{self._child_error or 'timed out'}")
            ok, value = self._replies.pop(request)
        if not ok:
            raise RuntimeError(value)
        return value

    # -- the child and the threads ------------------------------------------------------

    def _spawn_locked(self) -> None:
        env = dict(os.environ)
        # The child imports this package from where the parent did.
        root = str(Path(segment_client.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p
        )
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        try:
            # stderr is inherited: the child's logs go where the collector's go.
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "segment_client.collector._warehouse._child"],
                stdin=child_in, stdout=child_out, env=env, close_fds=True,
            )
        except OSError:
            os.close(to_child)
            os.close(from_child)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        self._to_child = Connection(to_child, readable=False)
        self._from_child = Connection(from_child, writable=False)
        self._clears_base = self._clears_asked
        self._clears_done = 0
        self._open_failure = None
        # The URL goes through the pipe: a command line is visible to other users.
        self._to_child.send(("open", self._url, self._store_path, self._loaded,
                             self._options))
        if self._known > self._loaded:
            self._outbox.appendleft(("rows", self._known))

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(lambda: self._stopping or bool(self._outbox))
                if self._stopping:
                    return
                message = self._outbox.popleft()
                to_child = self._to_child
            if to_child is None:
                continue
            # A dead child: the reader restarts it and resends what counts.
            with contextlib.suppress(OSError):
                to_child.send(message)

    def _read_loop(self) -> None:
        while True:
            with self._lock:
                from_child, proc = self._from_child, self._proc
            assert from_child is not None and proc is not None
            try:
                while True:
                    self._received(from_child.recv())
            except (EOFError, OSError):
                pass
            from_child.close()
            code = proc.wait()
            with self._lock:
                if self._stopping:
                    return
                self._exit = _describe(code)
                if self._open_failure is not None:
                    # It could not open the warehouse or the store: say why.
                    self._child_error = f"{self._open_failure}; retrying"
                else:
                    self._child_error = f"warehouse loader process {self._exit}; restarting"
                self._restarts += 1
                self._replies.update(
                    {r[1]: (False, self._child_error) for r in self._outbox if r[0] == "read"}
                )
                self._outbox = deque(m for m in self._outbox if m[0] != "read")
                self._changed.notify_all()
                while True:
                    if self._changed.wait_for(lambda: self._stopping, self._retry_wait):
                        return
                    try:
                        self._spawn_locked()
                        break
                    except OSError as exc:  # cannot even start Python: report, retry
                        self._child_error = f"cannot start the warehouse loader: {exc}"

    def _received(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        with self._lock:
            if kind == "progress":
                _, status, clears = message
                self._child_status = status
                self._child_error = status.get("error")
                self._clears_done = clears
                loaded = int(status.get("loaded_id", 0))
                if loaded > self._loaded:
                    self._loaded = loaded
                    while self._marks and self._marks[0][0] <= loaded:
                        self._marks.popleft()
                if self._loaded >= self._known:
                    self._marks.clear()
            elif kind == "ready":
                self._child_error = None
            elif kind == "failed":
                self._open_failure = self._child_error = message[1]
            elif kind == "reply":
                _, request, ok, value = message
                self._replies[request] = (ok, value)
            self._changed.notify_all()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"
