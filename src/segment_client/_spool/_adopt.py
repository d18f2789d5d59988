"""Adoption: reading the files of a writer whose process is gone.

A writer's `.ack` file is flocked while its process lives; a non-blocking `flock`
succeeds only once it is gone (the kernel drops the lock however the process died).
`adopt` takes that lock, reads the cursor, checks every segment record by record and
returns what can still be sent, with an exact count of what cannot: record indexes
(format 2) give the number of records in a damaged stretch, and the next segment's first
index the number lost at the end of one.

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
from ._files import NAME, Trust, is_trusted, open_at, unlink_at
from ._segment import Segment, Writer

__all__ = ["Adopted", "adopt", "release", "writer_ids"]

logger = logging.getLogger("segment_client")


@dataclass
class Adopted:
    """What `adopt` found: the writer (None when nothing is left) and counts."""

    writer: Writer | None
    recovered: int = 0
    lost: int = 0  # records found unreadable
    bad_bytes: int = 0
    unknown_version: bool = False  # a newer format: the writer's files are left alone


def writer_ids(names: list[str]) -> set[str]:
    """The writer ids among directory entries (other names are not ours)."""
    return {m.group(1) for m in map(NAME.match, names) if m}


def adopt(dir_fd: int, wid: str, trust: Trust) -> Adopted | None:
    """Lock and read the files of writer `wid`; None when its process is alive (or
    another process adopted it first). Raises OSError when its files cannot be read or
    are not trusted (then nothing of it was changed)."""
    ack_name = wid + ".ack"
    fd = open_at(dir_fd, ack_name, os.O_RDWR, trust)
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
    try:
        return _read_writer(dir_fd, writer, trust)
    except OSError:
        for segment in writer.segments:
            if segment.fd is not None:
                os.close(segment.fd)
        release(dir_fd, writer, unlink=False)
        raise


def _read_writer(dir_fd: int, writer: Writer, trust: Trust) -> Adopted:
    wid = writer.wid
    cursor = _read_cursor(writer.ack_fd)
    prefix = wid + "."
    seqs = sorted(
        int(m.group(2))
        for m in map(NAME.match, os.listdir(dir_fd))
        if m and m.group(2) and m.string.startswith(prefix)
    )
    found = Adopted(writer)
    # Open (and check) every segment before changing anything.
    opened: list[tuple[int, str, int]] = []
    try:
        for seq in seqs:
            name = f"{wid}.{seq:08d}.seg"
            if cursor is not None and seq < cursor[0]:
                continue
            opened.append((seq, name, open_at(dir_fd, name, os.O_RDWR, trust)))
    except OSError:
        for _, _, seg_fd in opened:
            os.close(seg_fd)
        raise
    for seq in seqs:
        name = f"{wid}.{seq:08d}.seg"
        if cursor is not None and seq < cursor[0] and is_trusted(dir_fd, name, trust):
            unlink_at(dir_fd, name)  # finished before the crash; its deletion was cut short
    tail: tuple[int, int] | None = None  # (records seen lost at the end, next index)
    for seq, name, seg_fd in opened:
        header = os.pread(seg_fd, rec.FILE_HEADER_SIZE, 0)
        fmt = rec.parse_file_header(header)
        if fmt is None:
            # Another format version: a newer client may read it; leave it alone.
            logger.warning("leaving spool files of %s (unknown version)", wid)
            for _, _, other in opened:
                os.close(other)
            release(dir_fd, writer, unlink=False)
            return Adopted(None, unknown_version=True)
        if tail is not None and fmt.first is not None:
            # The end of the previous segment was damaged: its count is now exact.
            gap = (fmt.first - tail[1]) & 0xFFFFFFFF  # numbers wrap at 2**32
            if tail[0] <= gap < 1 << 31:
                found.lost += gap - tail[0]
        at = cursor if cursor is not None and cursor[0] == seq else None
        segment, tail = _read_segment(seg_fd, name, seq, fmt, at, found)
        if segment.unread:
            writer.segments.append(segment)
            writer.unread += segment.unread
        else:
            os.close(seg_fd)
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


def _read_cursor(fd: int) -> tuple[int, int, int | None] | None:
    try:
        return rec.unpack_cursor(os.pread(fd, rec.CURSOR_SIZE, 0))
    except ValueError:
        logger.warning(
            "a spool ack file is damaged; its messages may be sent twice "
            "(same messageIds)"
        )
        return None


def _read_segment(
    fd: int,
    name: str,
    seq: int,
    fmt: rec.Format,
    cursor: tuple[int, int, int | None] | None,
    found: Adopted,
) -> tuple[Segment, tuple[int, int] | None]:
    """Scan one adopted segment (kept open on `fd`); add its counts to `found`.

    Returns the segment and, when its index is known at its end, `(lost, next index)`
    where `lost` counts what was already added for a damaged end."""
    size = os.fstat(fd).st_size
    start = rec.FILE_HEADER_SIZE
    data_end = max(start, rec.data_end(fd, size))
    offset, expect = start, fmt.first
    if cursor is not None:
        offset = max(start, min(cursor[1], size))
        expect = cursor[2] if fmt.version >= 2 else None
    got = 0
    # Reading stops after the last readable record: an unreadable end (a record torn by
    # the crash, counted here) must not keep the file from being deleted once everything
    # before it is delivered.
    end = offset
    tail_lost = 0
    chunk = rec.SCAN_CHUNK
    for begin, stop, payload, value in rec.records(fd, offset, size, chunk, fmt.version, expect):
        if payload is None:
            # The zero tail of a mapped segment is the end of its data, not damage.
            found.lost += value
            found.bad_bytes += max(0, min(stop, data_end) - begin)
            tail_lost = value
        else:
            got += 1
            end = stop
            expect = (value + 1) & 0xFFFFFFFF if fmt.version >= 2 else None
            tail_lost = 0
    if data_end < size:  # give the preallocated tail back (on the fd, not by path)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, max(data_end, end))
            size = max(data_end, end)
    found.recovered += got
    segment = Segment(name, seq, end, start, got, fmt.first)
    segment.version = fmt.version
    segment.disk = size
    segment.fd = fd
    return segment, (None if expect is None else (tail_lost, expect))
