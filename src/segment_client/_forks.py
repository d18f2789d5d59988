"""Which process this is, without a system call on every message.

Every call checks whether it runs in a forked child (a new id pool, a fresh queue), and
`os.getpid()` is a system call: on virtual machines it costs a large share of a
`track()` (~0.3-0.7 us measured, against ~30 ns for a memory read). `getpid` returns the
same value as `os.getpid()` but reads it from memory while one page, which Linux zeroes
in a child at every fork (`MADV_WIPEONFORK`, Linux >= 4.14), stays set. That also
catches forks that skip Python's `os.register_at_fork` hooks (uWSGI forks its workers
in C without them by default). Elsewhere, or when the kernel refuses, it is
`os.getpid()` itself.
"""

from __future__ import annotations

import mmap
import os
import sys

__all__ = ["getpid"]

# Not exposed by the mmap module of every Python build; the value is Linux's ABI.
_MADV_WIPEONFORK = 18


def _arm() -> mmap.mmap | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Private and anonymous: the kernel wipes only such mappings on fork.
        page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        page.madvise(getattr(mmap, "MADV_WIPEONFORK", _MADV_WIPEONFORK))
    except (OSError, AttributeError, ValueError):
        return None
    page[0] = 1
    return page


_page = _arm()
_pid = os.getpid()


def getpid() -> int:
    """The current process id, as `os.getpid()`. Thread-safe; never blocks."""
    global _pid
    page = _page
    if page is None:
        return os.getpid()
    if page[0]:
        return _pid
    # A fork happened (this is the child): read the pid once, then re-arm. The pid is
    # stored before the page is set, so a thread that sees the page set sees the pid.
    _pid = os.getpid()
    page[0] = 1
    return _pid
