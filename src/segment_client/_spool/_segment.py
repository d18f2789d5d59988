"""A spool's files in memory: `Segment` (one `.seg` file), `Writer` (one writer's files),
and the memory map a live segment is written through.

Thread-safety: plain state; `SpoolQueue` guards it with its locks (the map and the fd of
a live segment under its caller-side lock).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os

__all__ = ["MAP_WINDOW", "Segment", "Writer", "close_fd", "map_segment", "release_pages", "unmap"]

logger = logging.getLogger("segment_client")

# Pages of the map the writer has moved past are released every this many bytes, so the
# map adds at most about this much to the process's resident size (the data stays in the
# page cache and the file: madvise(MADV_DONTNEED) on a shared file map only unmaps).
MAP_WINDOW = 1 << 20


class Segment:
    """One segment file: where its records end, what it occupies, what is unread."""

    __slots__ = (
        "cap", "disk", "fd", "first", "limit", "mm", "name", "room", "seq", "size", "start",
        "unread", "version",
    )

    def __init__(
        self, name: str, seq: int, size: int, start: int, unread: int, first: int | None = 0
    ) -> None:
        self.name = name  # the file name in the spool directory ("" for no file)
        self.seq = seq
        self.first = first  # the writer-wide index of its first record (None: unknown)
        self.room = 0  # the size it is rotated at (a live segment of ours)
        self.version = 2  # the record format
        self.size = size  # bytes that hold complete records (the logical end)
        self.disk = size  # bytes the file occupies (counted against the cap)
        self.start = start  # offset of the first record
        self.unread = unread  # records not yet taken
        self.fd: int | None = None
        self.mm: mmap.mmap | None = None  # our live segment's map (writes go there)
        self.cap = 0  # bytes mapped (and preallocated) when mm is set
        self.limit = 0  # put copies into the map up to here, then releases pages behind


class Writer:
    """One writer's files: our own (`own`) or adopted from a process that is gone."""

    __slots__ = ("ack_fd", "ack_name", "own", "read_idx", "read_off", "segments", "unread", "wid")

    def __init__(self, wid: str, ack_name: str, ack_fd: int, own: bool) -> None:
        self.wid = wid
        self.ack_name = ack_name
        self.ack_fd = ack_fd
        self.own = own
        self.segments: list[Segment] = []
        self.read_idx = 0
        self.read_off = 0
        self.unread = 0  # adopted writers only (own ones count per segment)


def map_segment(segment: Segment, cap: int) -> bool:
    """Preallocate and map the first `cap` bytes of `segment` (its fd open read-write).

    The space is reserved up front: a write into a mapped page the file system cannot
    back would kill the process with SIGBUS, where posix_fallocate fails cleanly (ENOSPC,
    EFBIG under RLIMIT_FSIZE). False if that fails or the file system cannot map: the
    segment is then written with write(2), which reports a full disk per message.
    """
    assert segment.fd is not None
    page = mmap.PAGESIZE
    cap = -(-max(cap, segment.start) // page) * page
    try:
        os.posix_fallocate(segment.fd, 0, cap)
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        segment.mm = mmap.mmap(segment.fd, cap, mmap.MAP_SHARED, prot)
    except (OSError, ValueError, AttributeError) as exc:
        logger.debug("spool file %s not mapped: %s", segment.name, exc)
        # Give back whatever was allocated; appends continue at the logical end.
        with contextlib.suppress(OSError):
            os.ftruncate(segment.fd, segment.size)
        return False
    segment.cap = cap
    segment.limit = min(cap, MAP_WINDOW)
    segment.disk = cap
    return True


def release_pages(segment: Segment, end: int) -> None:
    """Unmap the pages of `segment` before its write position, keep up to `end` mapped."""
    mm = segment.mm
    assert mm is not None
    window = -(-end // MAP_WINDOW) * MAP_WINDOW
    done = segment.size // mmap.PAGESIZE * mmap.PAGESIZE
    with contextlib.suppress(OSError, ValueError, AttributeError):
        mm.madvise(mmap.MADV_DONTNEED, 0, done)
    segment.limit = min(segment.cap, window)


def unmap(segment: Segment) -> None:
    """Stop mapping `segment` and cut it to its logical size (its zero tail goes).

    Raises OSError if the cut fails (then appending with write(2) would leave zeros
    between records)."""
    mm, segment.mm = segment.mm, None
    if mm is None:
        return
    mm.close()
    segment.cap = segment.limit = 0
    if segment.fd is not None:
        os.ftruncate(segment.fd, segment.size)
        segment.disk = segment.size


def close_fd(segment: Segment) -> None:
    """Drop the map (without cutting the file) and close the descriptor."""
    mm, segment.mm = segment.mm, None
    if mm is not None:
        mm.close()
    fd, segment.fd = segment.fd, None
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
