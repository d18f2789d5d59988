"""A spool's process death, simulated in the test process.

`SpoolQueue._forget()` closes the queue's descriptors, which drops its flocks, as a
process death does. Unlike a death, another thread of the test process may be starting a
subprocess at that moment: the child, between its fork and its exec, holds copies of
every descriptor and so the flock of the "dead" writer, which then looks alive to an
adopter. `die` waits for that (a blocking flock on the same file returns once no copy
is left; exec closes them) so the next adoption sees the writer dead.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from segment_client._spool import SpoolQueue

__all__ = ["die"]


def die(queue: SpoolQueue) -> None:
    """Forget `queue` like its process died; return once its locks are free."""
    directory = Path(queue._dir)
    names = [writer.ack_name for writer in queue._writers]
    queue._forget()
    for name in names:
        try:
            fd = os.open(directory / name, os.O_RDWR)
        except FileNotFoundError:
            continue  # retired: nothing holds it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while a fork child holds a copy
        finally:
            os.close(fd)  # and our lock goes with it
