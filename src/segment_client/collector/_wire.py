"""Reading requests off the wire: a whole request in bounded time, and the header
checks that keep one request from being read as another.

A socket timeout bounds each read, not a request: a client trickling one byte every few
seconds (slowloris) would hold a connection, and one of the server's capped slots, for as
long as it likes. `DeadlineReader` arms a deadline when the first byte of a request
arrives; a read after it raises `TimeoutError` (answered 408) once the deadline has
passed, and no read waits past it by more than the time that was left when it began.
Between requests a keep-alive connection may sit idle for `idle_timeout` as before.

`read_headers` reads a request's header lines into a dict; `header_problem` refuses
header lines that parsers disagree on (request smuggling): a space before the colon,
NUL or CR in a value, a repeated Content-Length, Transfer-Encoding or Host.
`absolute_form` takes `POST http://host/v1/batch` (how a request looks through a proxy)
as its path when its authority is the Host.

`DeadlineReader` is used by one connection thread only; the functions are pure.
"""

from __future__ import annotations

import io
import re
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import urlsplit

__all__ = ["DeadlineReader", "absolute_form", "header_problem", "read_headers"]

# Headers a request may carry once only: two lengths or two hosts that disagree are how
# requests are smuggled past one parser and read differently by another.
_SINGLE = frozenset({"content-length", "transfer-encoding", "host"})
_BAD_VALUE = re.compile(r"[\x00\r]")


class DeadlineReader(io.RawIOBase):
    """Raw reads from `sock`; wrap it in an `io.BufferedReader`.

    Args:
        sock: the connection (its timeout is managed here).
        idle_timeout: the longest wait for any one read, and the time a whole request
            (head and body) may take from its first byte.
    """

    def __init__(self, sock: socket.socket, idle_timeout: float) -> None:
        super().__init__()
        self._sock = sock
        self.idle_timeout = idle_timeout
        self._deadline: float | None = None
        self._timeout = idle_timeout  # the socket's timeout now
        self._arm = False

    def readable(self) -> bool:
        return True

    def next_request(self) -> None:
        """A new request may start: its first byte arms the deadline."""
        if self._timeout != self.idle_timeout:
            self._timeout = self.idle_timeout  # the last request shortened it
            self._sock.settimeout(self.idle_timeout)
        self._deadline = None
        self._arm = True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        deadline = self._deadline
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the request did not arrive within {self.idle_timeout:g} s")
            if left < self._timeout / 2:
                # Halved as the deadline nears (not set on every read: a request that
                # arrives promptly costs no extra system call), so one read overshoots
                # the deadline by less than the time that was left.
                self._timeout = left
                self._sock.settimeout(left)
        count = self._sock.recv_into(buffer)
        if self._arm and count:
            self._arm = False
            self._deadline = time.monotonic() + self.idle_timeout
        return count

    def close(self) -> None:
        # The socket belongs to the server, which shuts and closes it.
        super().close()


def header_problem(name: str, value: str, headers: dict[str, str]) -> str | None:
    """Why a header line is refused (400), or None.

    `name` is lower-cased but not stripped; `headers` holds the lines before it by
    lower-cased name.
    """
    if not name or name != name.strip():
        return f"bad header line {name[:40]!r}: no space is allowed before the colon"
    if _BAD_VALUE.search(value.rstrip("\r\n")):
        return f"bad header {name[:40]!r}: its value holds a NUL or CR character"
    if name in _SINGLE and name in headers:
        return f"the request repeats the {name.title()} header"
    return None


def absolute_form(target: str, headers: dict[str, str]) -> tuple[str | None, str]:
    """`(problem, path)` for an absolute-form target: its path and query, when its
    authority is the `Host` header (set from it when there is none, for the allow-list
    to check); else a problem for a 400."""
    parts = urlsplit(target)
    authority = parts.netloc.lower()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not authority:
        return f"bad request target {target[:60]!r}: no host after the scheme", path
    host = dict.get(headers, "host")
    if host is None:
        dict.__setitem__(headers, "host", authority)
    elif host.strip().lower() != authority:
        return (f"the request target names {authority[:60]!r} but the Host header "
                f"{host.strip()[:60]!r}", path)
    return None, path


def read_headers(readline: Callable[[int], bytes], headers: dict[str, str],
                 max_headers: int) -> tuple[HTTPStatus, str] | None:
    """Read header lines up to the blank line into `headers` (by lower-cased name; the
    first of repeated ones counts, as with the email package); `(status, reason)` when
    the head is refused. Raises TimeoutError from `readline`."""
    last = ""
    for _ in range(max_headers + 1):
        line = readline(65537)
        if len(line) > 65536:
            return (HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "a header line is over 65536 bytes")
        if line in (b"\r\n", b"\n", b""):
            return None
        text = str(line, "iso-8859-1")
        if text[0] in " \t" and last:  # an obsolete folded continuation line
            headers[last] = f"{headers[last]} {text.strip()}"
            continue
        name, _, value = text.partition(":")
        last = name.lower()
        problem = header_problem(last, value, headers)
        if problem:
            return HTTPStatus.BAD_REQUEST, problem
        if last not in headers:
            dict.__setitem__(headers, last, value.strip())
        else:
            last = ""
    return (HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            f"the request has more than {max_headers} headers")
