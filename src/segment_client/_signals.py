"""The opt-in SIGTERM handler: flush within a deadline, then chain to the previous handler.

Python runs no `atexit` hook when SIGTERM kills it with the default action, which is
how containers and Kubernetes stop a process: without this, whatever is queued is lost.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import weakref
from types import FrameType
from typing import Any

from ._checks import check_number
from ._client import Client
from ._exceptions import ConfigurationError

__all__ = ["install_sigterm_handler"]

logger = logging.getLogger("segment_client")

_lock = threading.Lock()
_installed: _SigtermHandler | None = None


class _SigtermHandler:
    """The installed handler: flushes its clients, then defers to what was there before."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous
        self.timeout = 5.0
        self.clients: weakref.WeakSet[Client] = weakref.WeakSet()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self._flush()
        self._chain(signum, frame)

    def _flush(self) -> None:
        clients = list(self.clients)
        if not clients:
            return
        deadline = time.monotonic() + self.timeout
        results: list[bool] = []

        def run() -> None:
            for client in clients:
                results.append(client.flush(max(0.0, deadline - time.monotonic())))

        # A helper thread, not this one: the signal may have interrupted the main thread
        # inside the client while it holds a lock the flush needs. Joined with the
        # deadline, the worst case is a late flush, never a hung process.
        worker = threading.Thread(target=run, name="segment_client.sigterm", daemon=True)
        try:
            worker.start()
        except RuntimeError:  # interpreter shutting down: threads can no longer start
            return
        worker.join(max(0.0, deadline - time.monotonic()) + 0.05)
        if len(results) == len(clients) and all(results):
            logger.info("flushed on SIGTERM")
        else:
            logger.warning(
                "flush on SIGTERM did not deliver everything within %.3gs",
                self.timeout,
            )

    def _chain(self, signum: int, frame: FrameType | None) -> None:
        previous = self.previous
        if previous is signal.SIG_IGN:
            return
        if callable(previous):
            previous(signum, frame)
            return
        # SIG_DFL, or None (a handler installed outside Python): restore the default
        # action and deliver the signal again, so the process ends with the status a
        # supervisor expects from SIGTERM.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def install_sigterm_handler(client: Client, timeout: float = 5.0) -> None:
    """On SIGTERM, flush `client` within `timeout` seconds, then run the previous handler.

    The previous handler is called when it is a function; when it was the default
    action, that is restored and the signal raised again (the process exits with the
    SIGTERM status); when it was ignored, nothing more happens. Calling this again (for
    the same or another client) adds the client to the one installed handler and sets
    its timeout, shared by all its clients; it never chains the handler to itself.
    Flushes rather than closes: a chained handler (gunicorn's graceful stop) may still
    serve requests that send messages, and atexit closes the client afterwards.

    Must be called from the main thread (Python only installs signal handlers there).
    """
    global _installed
    if not isinstance(client, Client):
        raise ConfigurationError(f"client must be a segment_client.Client, got {client!r}")
    check_number("timeout", timeout, minimum=0)
    if threading.current_thread() is not threading.main_thread():
        raise ConfigurationError(
            "install_sigterm_handler() must be called from the main thread: Python only "
            "lets the main thread install signal handlers"
        )
    with _lock:
        current = signal.getsignal(signal.SIGTERM)
        handler = _installed if current is _installed else None
        if handler is None:
            # First call, or someone replaced our handler since: wrap what is there now.
            handler = _SigtermHandler(previous=current)
            signal.signal(signal.SIGTERM, handler)
            _installed = handler
        handler.timeout = float(timeout)
        handler.clients.add(client)
