"""The writer side of the spool: this process's own files (`WriterSide`, a part of
`SpoolQueue`): creating the writer and its segments, the slow path of `put` (rotation,
write(2) where a segment is not mapped), and what happens when the disk is full.

A segment is sized by `_space.segment_room` (the size limit, RLIMIT_FSIZE and the free
space all count). On a full disk the spool still starts: without a segment of its own it
refuses puts ("spool_error") and tries again to create one at most every
`space_retry_interval` seconds, while adopted files are sent and acknowledged (that
needs no new space).

Thread-safety: every method here runs under `SpoolQueue._lock`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import threading
import time

from . import _records as rec
from ._files import Trust, open_at, unlink_at
from ._segment import Segment, Writer, map_segment, release_pages, unmap
from ._space import FreeSpace, segment_room

__all__ = ["NO_SPACE", "WriterSide"]

logger = logging.getLogger("segment_client")

# Errors that mean "no room for new data" (a full disk, a quota, RLIMIT_FSIZE).
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

_write = os.write


class WriterSide:
    """Our own files; mixed into `SpoolQueue`, which sets these attributes."""

    _dir: str
    _dir_fd: int
    _trust: Trust
    _lock: threading.Lock
    _max_bytes: int
    _segment_bytes: int
    _free_space: FreeSpace
    _closed: bool
    _bytes: int
    _room: int
    _index: int
    _counted: int
    _live_seg: Segment
    _own: Writer
    _writers: list[Writer]
    _skipped: set[str]
    _dirty: list[Segment]
    _dir_dirty: bool
    _space_failed_at: float
    _space_error: OSError | None
    _rejection: tuple[str, str]
    _acks_dirty: set[int]

    #: Seconds between attempts to create a spool file after the disk was full.
    space_retry_interval = 1.0

    def _settle(self) -> None:
        # Under _lock. put does not count per segment (one counter less on the caller's
        # path): the records it wrote since the last settle belong to the live segment.
        written = (self._index - self._counted) & 0xFFFFFFFF
        if written:
            self._live_seg.unread += written
            self._counted = self._index

    def _hold(self, delta: int) -> None:
        # Under _lock: our files other than the live segment grew or shrank by `delta`.
        self._bytes += delta
        self._room = -1 if self._closed else self._max_bytes - self._bytes

    def disk_bytes(self) -> int:
        """Bytes of spool files this queue holds (what `max_bytes` limits)."""
        return self._bytes + self._live_seg.size

    def _create_writer(self) -> Writer:
        wid = f"{time.time_ns():016x}-{os.getpid()}-{secrets.token_hex(3)}"
        ack_name = wid + ".ack"
        # Locked before it appears under its name, so no scanner can take it for the file
        # of a process that is gone.
        tmp_name = ack_name + ".new"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        ack_fd = open_at(self._dir_fd, tmp_name, flags, self._trust)
        fcntl.flock(ack_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp_name, ack_name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        writer = Writer(wid, ack_name, ack_fd, own=True)
        self._writers.append(writer)
        self._skipped.add(wid)
        try:
            segment = self._new_segment(writer, 0)
        except OSError as exc:
            if exc.errno not in NO_SPACE:
                raise
            # A full disk: start anyway. Adopted files can be sent and acknowledged
            # without new space; puts are refused until a segment can be created.
            logger.warning("no space for a new spool file: %s", exc)
            self._live_seg = Segment("", -1, 0, 0, 0)
            self._no_space(exc)
            return writer
        self._live_seg = segment
        writer.read_off = segment.start
        self._write_cursor(writer, segment.seq, segment.start, segment.first)
        return writer

    def _new_segment(self, writer: Writer, seq: int, need: int = 0) -> Segment:
        name = f"{writer.wid}.{seq:08d}.seg"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND
        fd = open_at(self._dir_fd, name, flags, self._trust)
        first = self._index
        header = rec.file_header(first)
        try:
            if _write(fd, header) != len(header):
                raise OSError(errno.ENOSPC, "short write of the spool file header")
        except OSError:
            os.close(fd)
            unlink_at(self._dir_fd, name)
            raise
        start = len(header)
        segment = Segment(name, seq, start, start, 0, first)
        segment.fd = fd
        room = segment_room(min(self._segment_bytes, self._max_bytes), self._dir_fd,
                            self._free_space)
        segment.room = max(room, start + need)
        map_segment(segment, segment.room)
        writer.segments.append(segment)
        self._dir_dirty = True
        return segment

    def _put_slow(self, segment: Segment, record: bytes) -> bool:
        """Rotate if needed, then append `record` to the live segment. Under _lock.

        False (and the rejection set) if it could not be written."""
        size = len(record)
        try:
            end = segment.size + size
            if segment.fd is None or (segment.size > segment.start and (
                end > segment.room or (segment.mm is not None and end > segment.cap)
            )):
                error = self._space_error
                retry_at = self._space_failed_at + self.space_retry_interval
                if error is not None and time.monotonic() < retry_at:
                    raise error
                try:
                    segment = self._rotate(size)
                except OSError as exc:
                    if exc.errno in NO_SPACE:
                        self._no_space(exc)
                    raise
                self._space_error = None
                end = segment.size + size
            if segment.mm is not None:
                if end <= segment.cap:
                    if end > segment.limit:
                        release_pages(segment, end)
                    segment.mm[segment.size : end] = record
                    segment.size = end
                    return True
                unmap(segment)  # a record larger than an empty segment's map
            written = _write(segment.fd, record)  # type: ignore[arg-type]
        except OSError as exc:
            self._write_failed(segment, exc)
            return False
        if written != size:
            self._write_failed(
                segment, OSError(errno.ENOSPC, "short write: disk or file size limit")
            )
            return False
        segment.size = end
        return True

    def _no_space(self, exc: OSError) -> None:
        # Until the retry time, puts are refused with this error without a system call.
        self._space_error = OSError(exc.errno, f"no space for a new spool file: {exc}")
        self._space_failed_at = time.monotonic()

    def _refuse(self) -> int:
        if self._closed:
            self._rejection = ("closed", "the spool is closed")
        else:
            self._rejection = (
                "spool_full",
                f"the spool holds {self.disk_bytes()} bytes, at its limit of "
                f"{self._max_bytes} (spool_max_bytes); the message was dropped",
            )
        return 0


    def _rotate(self, need: int = 0) -> Segment:
        # Under _lock. The old segment stays open for reading until it is acknowledged.
        self._settle()  # the records so far are the old segment's
        old = self._live_seg
        segment = self._new_segment(self._own, max(0, old.seq + 1), need)
        if old.fd is not None:
            with contextlib.suppress(OSError):
                # If the cut fails its zero tail stays: readers take it for the end.
                unmap(old)
            old.disk = max(old.disk, old.size)
            self._hold(old.disk)
            self._dirty.append(old)
        else:  # there was no file (a full disk at the start): begin the cursor here
            self._own.read_idx = len(self._own.segments) - 1
            self._own.read_off = segment.start
        self._live_seg = segment
        return segment

    def _write_failed(self, segment: Segment, exc: OSError) -> None:
        # Under _lock. Cut a partial record off so the file stays a sequence of records;
        # if even that fails, a reader skips the damage by its checksum. (A mapped segment
        # is never cut: its map must stay backed by the file.)
        if segment.fd is not None and segment.mm is None:
            try:
                os.ftruncate(segment.fd, segment.size)
            except OSError:
                segment.disk = max(segment.disk, os.fstat(segment.fd).st_size)
        self._rejection = (
            "spool_error",
            f"could not write to the spool in {self._dir!r} ({exc}); the message was dropped",
        )

    def _write_cursor(self, writer: Writer, seq: int, offset: int, index: int | None) -> None:
        # Overwrites the same bytes in place: acknowledging needs no new disk space.
        try:
            os.pwrite(writer.ack_fd, rec.pack_cursor(seq, offset, index), 0)
        except OSError as exc:
            # Only costs duplicates (same messageIds) after a crash, never a loss.
            logger.warning("could not record spool progress: %s", exc)
            return
        self._acks_dirty.add(writer.ack_fd)
