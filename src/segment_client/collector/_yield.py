"""`share_gil()`: a background loop's way to let request threads run first.

CPython hands the GIL to a waiting thread only every switch interval (5 ms) unless the
holder releases it. The collector's request threads release and take it back around
every socket read and write, so a busy follower thread (warehouse loading, usage
counting) would delay each of those steps by up to 5 ms and cut ingest by several times.
Calling `share_gil()` every few hundred microseconds of work releases the GIL at once:
a waiting request thread runs, an idle process loses next to nothing.
"""

from __future__ import annotations

import os
import time

__all__ = ["share_gil"]

if hasattr(os, "sched_yield"):
    share_gil = os.sched_yield  # releases the GIL around the system call
else:  # pragma: no cover - Windows

    def share_gil() -> None:
        time.sleep(0)  # noqa: TID251 - a yield of the GIL, not a wait for a thread
