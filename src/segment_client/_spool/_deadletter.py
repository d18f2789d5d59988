"""The dead-letter file: messages the collector will never accept, kept for a person.

`dead-letter.jsonl` in the spool directory holds one JSON object per line:

    {"time": "2026-12-01T09:30:00.123Z", "error": "HTTP 400: ...", "kind": "APIError",
     "status": 400, "response": "...", "message": {...the message as it was spooled...}}

`status` and `response` (the collector's answer, at most 1,000 characters) are null when
there was no HTTP answer. Lines are appended with one `write` each by any process on the
directory, under an exclusive `flock` held only for that write; `take` (used by the
`segment-client spool resend` command) renames the file away under the same lock, so a
line is never written into a file already taken.

Thread-safety: `append` may be called from any thread of any process; it never raises
and blocks only while another process holds the lock for one write or one rename.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterator
from typing import Any

from segment_client._exceptions import APIError, DeliveryError

from ._files import Trust, is_trusted, open_at, unlink_at

__all__ = ["DEAD_LETTER", "DeadLetters", "message_bytes"]

logger = logging.getLogger("segment_client")

DEAD_LETTER = "dead-letter.jsonl"
_TAKEN_PREFIX = "dead-letter.taken-"
_MESSAGE_KEY = b',"message":'


def _line(data: bytes, error: DeliveryError, now: dt.datetime) -> bytes:
    api = error if isinstance(error, APIError) else None
    head = {
        "time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "error": str(error),
        "kind": type(error).__name__,
        "status": None if api is None else api.status,
        "response": None if api is None else api.body,
    }
    # The message's own bytes go in unchanged (they are one JSON object).
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
    return text[:-1].encode() + _MESSAGE_KEY + data + b"}\n"


def message_bytes(entry: dict[str, Any]) -> bytes:
    """The message of an entry as it was spooled (its bytes, not a re-encoding)."""
    raw: bytes = entry["_raw"]
    # The head's strings cannot hold the key unescaped: the first match is the key.
    return raw[raw.index(_MESSAGE_KEY) + len(_MESSAGE_KEY) : raw.rindex(b"}")]


class DeadLetters:
    """The dead-letter file of one spool directory (`dir_fd`, checked by `trust`)."""

    def __init__(self, dir_fd: int, trust: Trust) -> None:
        self._dir_fd = dir_fd
        self._trust = trust

    def close(self) -> None:
        """Close the directory's descriptor (for an instance that owns it)."""
        with contextlib.suppress(OSError):
            os.close(self._dir_fd)

    def append(self, data: bytes, error: DeliveryError) -> bool:
        """Add one message; False (logged) if it could not be written. Never raises."""
        try:
            return self._append(_line(data, error, dt.datetime.now(dt.timezone.utc)))
        except (OSError, ValueError, TypeError) as exc:  # never into the consumer
            logger.error(
                "could not write a message to the dead-letter file: %s", exc
            )
            return False

    def append_raw(self, text: str) -> bool:
        """Write back a line that could not be parsed (as it was). Never raises."""
        try:
            return self._append(text.encode() + b"\n")
        except OSError as exc:
            logger.error("could not write the dead-letter file: %s", exc)
            return False

    def _append(self, line: bytes) -> bool:
        for _ in range(10):  # reopen if the file was taken between our open and lock
            fd = open_at(self._dir_fd, DEAD_LETTER, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                         self._trust)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if self._current(fd):
                    if os.write(fd, line) != len(line):
                        raise OSError("short write to the dead-letter file")
                    return True
            finally:
                os.close(fd)
        raise OSError("the dead-letter file keeps being replaced")

    def _current(self, fd: int) -> bool:
        try:
            st = os.stat(DEAD_LETTER, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return st.st_ino == os.fstat(fd).st_ino

    def entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """`(file name, entry)` for every line of the file and of taken files left by an
        interrupted resend; a damaged line gives `{"damaged": text}`. An entry's "_raw"
        holds its line's bytes (see `message_bytes`)."""
        for name in self._names():
            try:
                fd = open_at(self._dir_fd, name, os.O_RDONLY, self._trust)
            except FileNotFoundError:
                continue
            with os.fdopen(fd, "rb") as f:
                for raw in f:
                    yield name, _parse(raw)

    def take(self) -> tuple[list[str], list[dict[str, Any]]]:
        """Move the file away (no appender writes into it afterwards) and read it, with
        any taken files left before. Returns the taken names (for `done`) and entries."""
        with contextlib.suppress(FileNotFoundError):
            fd = open_at(self._dir_fd, DEAD_LETTER, os.O_RDONLY, self._trust)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if self._current(fd):
                    taken = f"{_TAKEN_PREFIX}{os.getpid()}-{secrets.token_hex(3)}.jsonl"
                    os.rename(DEAD_LETTER, taken,
                              src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            finally:
                os.close(fd)
        names = [n for n in self._names() if n != DEAD_LETTER]
        entries = [entry for name, entry in self.entries() if name in names]
        return names, entries

    def done(self, names: list[str]) -> None:
        """Remove taken files once their entries were re-sent or written back."""
        for name in names:
            if is_trusted(self._dir_fd, name, self._trust):
                unlink_at(self._dir_fd, name)

    def _names(self) -> list[str]:
        names = sorted(n for n in os.listdir(self._dir_fd) if n.startswith(_TAKEN_PREFIX))
        if DEAD_LETTER in os.listdir(self._dir_fd):
            names.append(DEAD_LETTER)
        return names


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        entry = json.loads(raw)
    except ValueError:
        entry = None
    if not isinstance(entry, dict) or not isinstance(entry.get("message"), dict):
        return {"damaged": raw.decode("utf-8", "replace").rstrip("\n")}
    entry["_raw"] = raw.rstrip(b"\n")
    return entry
