"""How big the next segment may be: the size limit, the file size limit of the process
(RLIMIT_FSIZE) and the disk's free space all count.

A live segment is preallocated whole, so on a disk with little room it is made small
(a quarter of the free space, at least `MIN_SEGMENT`): a small disk is then filled only
by undelivered messages, and each segment goes as soon as it is delivered. Under
RLIMIT_FSIZE every segment stays below the limit (a file reaching it could hold no more
records), so the limit costs rotations, never messages.

Thread-safety: stateless.
"""

from __future__ import annotations

import mmap
import os
import resource
from collections.abc import Callable

__all__ = ["MIN_SEGMENT", "FreeSpace", "disk_free", "segment_room"]

#: `free_space(dir_fd) -> bytes` available to this user on the directory's file system.
FreeSpace = Callable[[int], int]

MIN_SEGMENT = 64 * 1024


def disk_free(dir_fd: int) -> int:
    """Bytes an unprivileged user may still allocate on the file system of `dir_fd`."""
    st = os.fstatvfs(dir_fd)
    return st.f_bavail * st.f_frsize


def file_size_limit() -> int | None:
    """The process's RLIMIT_FSIZE in bytes (None: unlimited)."""
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def segment_room(wanted: int, dir_fd: int, free_space: FreeSpace) -> int:
    """The size for a new segment: `wanted` (the configured size, within the spool's
    limit) cut to what the file size limit and the free space allow, in whole pages."""
    page = mmap.PAGESIZE
    room = wanted
    try:
        free = free_space(dir_fd)
    except OSError:
        free = None
    if free is not None:
        room = min(room, max(MIN_SEGMENT, free // 4))
    limit = file_size_limit()
    if limit is not None:
        room = min(room, limit)
    return max(page, room // page * page) if room >= page else room
