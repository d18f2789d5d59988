"""Pieces shared by every integration: the missing-extra error and the lazy per-process client."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from segment_client._client import Client
from segment_client._exceptions import MissingDependencyError

__all__ = ["LazyClient", "logger", "missing_dependency"]

logger = logging.getLogger("segment_client")


def missing_dependency(integration: str, extra: str, exc: ImportError) -> MissingDependencyError:
    """The error raised when `integration` is imported without its framework."""
    return MissingDependencyError(
        f"segment_client.integrations.{integration} needs {exc.name or extra!s}, which is not "
        f"installed: pip install 'segment-client[{extra}]'"
    )


class LazyClient:
    """One client per process, built by `factory` on first use.

    Thread-safe. Building on first use (not at import or configuration time) keeps a
    server that imports the app and then forks (gunicorn --preload, uWSGI, Celery
    prefork) from sharing one client between processes: a process that sees a client
    built by another pid builds its own. Clients close at interpreter exit (the core's
    atexit hook); `close()` closes earlier.
    """

    def __init__(self, factory: Callable[[], Client]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._pid = 0

    @property
    def built(self) -> bool:
        """True when this process already has its client."""
        return self._client is not None and self._pid == os.getpid()

    def get(self) -> Client:
        """This process's client, built now if needed (blocks only while building)."""
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                # A client inherited through fork is left to the parent: the core reset
                # its queue in this child, so dropping the reference loses nothing.
                self._client = self._factory()
                self._pid = os.getpid()
            return self._client

    def reset(self) -> None:
        """Forget the current client without closing it (the next `get()` builds one)."""
        with self._lock:
            self._client = None
            self._pid = 0

    def close(self, timeout: float | None = None) -> bool:
        """Close this process's client, if built, within `timeout`; the next `get()` rebuilds.

        Returns close_and_flush's result (True when there was nothing to close).
        """
        with self._lock:
            client, pid = self._client, self._pid
            self._client, self._pid = None, 0
        if client is None or pid != os.getpid():
            return True
        return client.close_and_flush(timeout)
