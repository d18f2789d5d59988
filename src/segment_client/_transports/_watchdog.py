"""A bound on a whole HTTP attempt: connect, send and read together.

`requests` applies its timeout to the connect and to each read separately, so a server
trickling one byte per read keeps an attempt alive indefinitely. The HTTP transport
mounts an adapter whose connections tell the `Watchdog` which socket the attempt on the
current thread uses; one watchdog thread per transport shuts that socket down when the
attempt's deadline passes, which ends the blocked read at once.

Cost on the hot path: one lock and a set insertion per attempt. The watchdog thread
sleeps until the earliest deadline of an attempt in progress, so under a steady load it
wakes about once per `request_timeout`, not once per request.

`requests` and `urllib3` are imported when the first adapter is made (`watched_adapter`),
not with this module: importing `segment_client` stays cheap (the pytest plugin pays it
in every test run of every project that installs the package).
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection
    from urllib3.poolmanager import PoolManager

__all__ = ["Attempt", "Watchdog", "watched_adapter"]

THREAD_NAME = "segment_client.watchdog"
# An idle watchdog thread ends after this long (the next attempt starts another), so a
# transport that is dropped without close() leaves no thread behind for long.
_IDLE_EXIT_S = 30.0

# The attempt running on this thread (set by the transport around one request). A
# connection created or reused by that request registers itself on it.
_current = threading.local()


class Attempt:
    """One HTTP attempt's deadline and the connection it uses."""

    __slots__ = ("conn", "deadline", "expired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conn: HTTPConnection | None = None
        self.expired = False

    def cut(self) -> None:
        """Shut the attempt's socket down: a read blocked on it returns at once."""
        self.expired = True
        conn = self.conn
        sock = None if conn is None else getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown, also for TLS sockets: SSLSocket.shutdown
                # would tear down its SSL object under the reading thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _register(conn: HTTPConnection) -> None:
    attempt: Attempt | None = getattr(_current, "attempt", None)
    if attempt is not None:
        attempt.conn = conn
        if attempt.expired:
            attempt.cut()


def watched_adapter() -> HTTPAdapter:
    """A new `HTTPAdapter` whose connections register with the current thread's attempt.

    Thread-safe. The first call imports `requests` and defines the classes (cached).
    """
    adapter: HTTPAdapter = _adapter_class()()
    return adapter


@functools.cache
def _adapter_class() -> type[HTTPAdapter]:
    # Defined on first use so that importing this module does not import requests.
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class WatchedHTTPConnection(HTTPConnection):
        def connect(self) -> None:
            _register(self)
            super().connect()
            _register(self)  # the socket exists now: cut it if the deadline passed meanwhile

        def request(self, *args: Any, **kwargs: Any) -> None:
            _register(self)
            super().request(*args, **kwargs)

    class WatchedHTTPSConnection(HTTPSConnection):
        def connect(self) -> None:
            _register(self)
            super().connect()
            _register(self)

        def request(self, *args: Any, **kwargs: Any) -> None:
            _register(self)
            super().request(*args, **kwargs)

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    def watch(manager: PoolManager) -> None:
        # Only urllib3's own pools are replaced (a SOCKS proxy manager keeps its classes:
        # its attempts stay bounded per read only).
        classes = manager.pool_classes_by_scheme
        if (
            classes.get("http") is HTTPConnectionPool
            and classes.get("https") is HTTPSConnectionPool
        ):
            manager.pool_classes_by_scheme = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}

    class WatchedAdapter(HTTPAdapter):
        """`HTTPAdapter` whose connections register with the attempt of the current thread."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            watch(self.poolmanager)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
            manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
            watch(manager)
            return manager

    return WatchedAdapter


class Watchdog:
    """Cuts attempts that outlive their deadline. Thread-safe; one per transport.

    `begin` and `end` never block beyond a short lock. The thread starts with an attempt
    and stops at `close`, or after `_IDLE_EXIT_S` without attempts. Not fork-safe: the
    transport makes a new one in a forked child.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._active: set[Attempt] = set()
        self._wake_at = float("inf")
        self._thread: threading.Thread | None = None
        self._closed = False

    def begin(self, timeout: float) -> Attempt:
        """Start watching an attempt of the current thread that must end in `timeout` s."""
        attempt = Attempt(self._clock() + timeout)
        with self._cond:
            self._active.add(attempt)
            if self._thread is None:
                self._start()
            elif attempt.deadline < self._wake_at:
                self._cond.notify()
        _current.attempt = attempt
        return attempt

    def end(self, attempt: Attempt) -> None:
        """The attempt finished (whatever its outcome): stop watching it."""
        _current.attempt = None
        with self._cond:
            self._active.discard(attempt)

    def close(self) -> None:
        """Stop the thread (attempts still running are no longer cut)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _start(self) -> None:
        # Called with _cond held.
        self._closed = False
        thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutdown: attempts stay bounded per read
            return
        self._thread = thread

    def _run(self) -> None:
        idle_since: float | None = None
        with self._cond:
            while not self._closed:
                now = self._clock()
                wake_at = float("inf")
                for attempt in list(self._active):
                    if attempt.deadline <= now:
                        self._active.discard(attempt)
                        attempt.cut()
                    elif attempt.deadline < wake_at:
                        wake_at = attempt.deadline
                self._wake_at = wake_at
                if wake_at != float("inf"):
                    idle_since = None
                    self._cond.wait(wake_at - now)
                elif idle_since is not None and now - idle_since >= _IDLE_EXIT_S:
                    self._thread = None  # begin() starts a new one
                    return
                else:
                    idle_since = now if idle_since is None else idle_since
                    self._cond.wait(_IDLE_EXIT_S)
