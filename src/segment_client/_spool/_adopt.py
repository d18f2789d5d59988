"""Adoption: reading the files of a writer whose process is gone.

A writer's `.ack` file is flocked while its process lives; a non-blocking `flock`
succeeds only once it is gone (the kernel drops the lock however the process died).
`adopt` takes that lock, reads the cursor, checks every segment record by record and
returns what can still be sent, with counts of what could not.

Thread-safety: touches only the files of the writer it adopts; run under the spool's
consumer-side lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from dataclasses import dataclass

from . import _records as rec
from ._files import NAME, open_at, unlink_at
from ._segment import Segment, Writer

__all__ = ["Adopted", "adopt", "writer_ids"]

logger = logging.getLogger("segment_client")


@dataclass
class Adopted:
    """What `adopt` found: the writer (None when nothing is left) and counts."""

    writer: Writer | None
    recovered: int = 0
    lost: int = 0  # records found unreadable
    bad_bytes: int = 0
    unknown_version: bool = False  # a newer format: leave the writer's files alone


def writer_ids(names: list[str]) -> set[str]:
    """The writer ids among directory entries (other names are not ours)."""
    return {m.group(1) for m in map(NAME.match, names) if m}


def adopt(dir_fd: int, wid: str) -> Adopted | None:
    """Lock and read the files of writer `wid`; None when its process is alive (or
    another process adopted it first). Raises OSError when its files cannot be read."""
    ack_name = wid + ".ack"
    fd = open_at(dir_fd, ack_name, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The file may have been retired (unlinked) between our open and our lock.
        if os.stat(ack_name, dir_fd=dir_fd, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
            raise BlockingIOError(errno.EWOULDBLOCK, "retired")
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise
    writer = Writer(wid, ack_name, fd, own=False)
    cursor = _read_cursor(fd)
    prefix = wid + "."
    seqs = sorted(
        int(m.group(2))
        for m in map(NAME.match, os.listdir(dir_fd))
        if m and m.group(2) and m.string.startswith(prefix)
    )
    found = Adopted(writer)
    for seq in seqs:
        name = f"{wid}.{seq:08d}.seg"
        if cursor is not None and seq < cursor[0]:
            unlink_at(dir_fd, name)  # finished before the crash; its deletion was cut short
            continue
        segment = _read_segment(dir_fd, name, seq, cursor, found)
        if found.unknown_version:
            release(dir_fd, writer, unlink=False)
            found.writer = None
            return found
        if segment is None:
            continue
        if segment.unread:
            writer.segments.append(segment)
            writer.unread += segment.unread
        else:
            unlink_at(dir_fd, name)
    if not writer.segments:
        release(dir_fd, writer, unlink=True)
        found.writer = None
        return found
    head = writer.segments[0]
    writer.read_off = head.start
    if cursor is not None and cursor[0] == head.seq:
        writer.read_off = max(head.start, cursor[1])
    return found


def release(dir_fd: int, writer: Writer, *, unlink: bool) -> None:
    """Give up an adopted writer: remove its lock file (when done) and unlock it."""
    if unlink:
        unlink_at(dir_fd, writer.ack_name)
    with contextlib.suppress(OSError):
        os.close(writer.ack_fd)


def _read_cursor(fd: int) -> tuple[int, int] | None:
    try:
        return rec.unpack_cursor(os.pread(fd, rec.CURSOR_SIZE, 0))
    except ValueError:
        logger.warning(
            "segment_client: a spool ack file is damaged; its messages may be sent twice "
            "(same messageIds)"
        )
        return None


def _read_segment(
    dir_fd: int, name: str, seq: int, cursor: tuple[int, int] | None, found: Adopted
) -> Segment | None:
    """Scan one adopted segment; add its counts to `found`."""
    fd = open_at(dir_fd, name, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        header = os.pread(fd, len(rec.FILE_HEADER), 0)
        if header == rec.FILE_HEADER:
            start = len(rec.FILE_HEADER)
        elif header.startswith(rec.FILE_FAMILY) and len(header) == len(rec.FILE_HEADER):
            # Another format version: a newer client may read it; leave it alone.
            logger.warning("segment_client: leaving spool file %s (unknown version)", name)
            found.unknown_version = True
            return None
        else:
            start = 0  # a damaged header: recover whatever records follow it
        data_end = max(start, rec.data_end(fd, size))
        offset = start
        if cursor is not None and cursor[0] == seq:
            offset = max(start, min(cursor[1], size))
        got = 0
        # Reading stops after the last readable record: an unreadable end (a record torn
        # by the crash, counted here) must not keep the file from being deleted once
        # everything before it is delivered.
        end = offset
        for begin, stop, payload, lost in rec.records(fd, offset, size, rec.SCAN_CHUNK):
            if payload is None:
                # The zero tail of a mapped segment is the end of its data, not damage.
                found.lost += lost
                found.bad_bytes += max(0, min(stop, data_end) - begin)
            else:
                got += 1
                end = stop
        if data_end < size:  # give the preallocated tail back (on the fd, not by path)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, max(data_end, end))
                size = max(data_end, end)
    finally:
        os.close(fd)
    found.recovered += got
    segment = Segment(name, seq, end, start, got)
    segment.disk = size
    return segment
