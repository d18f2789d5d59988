"""How the spool opens, creates and removes files: always relative to the spool
directory's descriptor, never by a path that could be redirected.

Thread-safety: stateless.
"""

from __future__ import annotations

import os
import re

__all__ = ["NAME", "open_at", "unlink_at"]

#: `<writer>.ack` and `<writer>.<seq>.seg`; group 1 is the writer id, group 2 the seq.
NAME = re.compile(r"^([0-9a-f]{16}-\d+-[0-9a-f]{6})\.(?:ack|(\d{8})\.seg)$")

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def open_at(dir_fd: int, name: str, flags: int, mode: int = 0o600) -> int:
    """Open `name` in the directory `dir_fd`."""
    return os.open(name, flags | _CLOEXEC, mode, dir_fd=dir_fd)


def unlink_at(dir_fd: int, name: str) -> bool:
    """Remove `name` from the directory; False if it could not be removed."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        return False
    return True
