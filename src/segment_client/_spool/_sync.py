"""The spool's background thread: runs `work` every `interval` seconds or when woken.

The work is the spool's fsyncs (never on a caller's thread). `stop` is bounded: a thread
stuck in a slow fsync is left to finish it on its own (it is a daemon thread and exits
after that fsync).

Thread-safety: `start`, `wake` and `stop` may be called from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["SyncThread"]

logger = logging.getLogger("segment_client")


class SyncThread:
    """One daemon thread calling `work()` periodically; started lazily."""

    def __init__(self, interval: float, work: Callable[[], None]) -> None:
        self._interval = interval
        self._work = work
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start the thread unless it runs or was stopped. Never raises."""
        with self._lock:
            if self._thread is not None or self._stopping:
                return
            thread = threading.Thread(target=self._run, name="segment_client.spool", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # no new threads at interpreter shutdown
                return
            self._thread = thread

    def wake(self) -> None:
        """Run `work` now (if the thread runs)."""
        self._wake.set()

    def stop(self, timeout: float | None) -> bool:
        """Stop the thread; wait for it at most `timeout` seconds. True if it ended."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(None if timeout is None else max(0.0, timeout))
        return not thread.is_alive()

    def forget(self) -> None:
        """In a forked child: the thread does not exist here; never start one."""
        self._thread = None
        self._stopping = True

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._work()
            except Exception:  # never let the sync thread die silently
                logger.exception("the spool sync thread failed")
