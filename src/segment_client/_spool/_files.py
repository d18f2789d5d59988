"""How the spool opens, creates and removes files, and which it trusts.

Everything is relative to the spool directory's descriptor (never a path that a
renamed or swapped parent could redirect). Files are opened with O_NOFOLLOW (a planted
symlink is refused, never followed) and O_NONBLOCK (a planted FIFO cannot hang the
open), then checked with fstat: a regular file with one link, owned by this user (or,
in a directory shared deliberately by a group, by that group). Nothing is truncated by
path: cuts use ftruncate on the checked descriptor.

The directory itself is created 0700; an existing one writable by other users, or by
its group unless sharing was asked for, or owned by someone else, is refused.

Thread-safety: stateless.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NAME",
    "Trust",
    "UntrustedFileError",
    "is_trusted",
    "open_at",
    "open_directory",
    "unlink_at",
]

#: `<writer>.ack` and `<writer>.<seq>.seg`; group 1 is the writer id, group 2 the seq.
NAME = re.compile(r"^([0-9a-f]{16}-\d+-[0-9a-f]{6})\.(?:ack|(\d{8})\.seg)$")

_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK


class UntrustedFileError(OSError):
    """A name in the spool directory is not a regular file of ours (left alone)."""


@dataclass(frozen=True)
class Trust:
    """Whose files the spool accepts, and the mode it creates them with."""

    uid: int
    group: int | None = None  # the directory's group, when shared deliberately

    @property
    def mode(self) -> int:
        return 0o600 if self.group is None else 0o660

    def problem(self, st: os.stat_result) -> str | None:
        """Why a file with status `st` is not trusted (None when it is)."""
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_nlink > 1:  # (0: removed meanwhile, harmless; the caller sees it)
            return f"has {st.st_nlink} links"
        if st.st_mode & 0o002:
            return "writable by other users"
        if st.st_uid == self.uid:
            return None
        if self.group is not None and st.st_gid == self.group:
            return None
        return f"owned by uid {st.st_uid}, not {self.uid}"


def open_directory(path: str, *, shared_group: bool = False) -> tuple[int, Trust]:
    """Create (0700) or open the spool directory and check that it is ours alone, or
    (`shared_group`) ours or our group's and not writable by others.

    Returns its descriptor and the trust rule for its files. Raises OSError when it
    cannot be created or opened, PermissionError (with the reason) when it is refused."""
    Path(path).mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        uid = os.geteuid()
        mode = stat.S_IMODE(st.st_mode)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        if mode & 0o002:
            raise PermissionError(
                errno.EPERM,
                f"it is writable by other users (mode {mode:04o}); another user could plant "
                "files or symlinks in it. chmod o-w it, or use a directory of your own",
            )
        if not shared_group:
            if st.st_uid != uid:
                raise PermissionError(
                    errno.EPERM,
                    f"it is owned by uid {st.st_uid}, not by this process's uid {uid}",
                )
            if mode & 0o020:
                raise PermissionError(
                    errno.EPERM,
                    f"it is writable by its group (mode {mode:04o}); chmod g-w it, or pass "
                    "spool_shared_group=True to share it with that group deliberately",
                )
            return fd, Trust(uid)
        groups = {os.getegid(), *os.getgroups()}
        if st.st_uid != uid and st.st_gid not in groups:
            raise PermissionError(
                errno.EPERM,
                f"it is owned by uid {st.st_uid} and group {st.st_gid}, and this process "
                "is in neither",
            )
        return fd, Trust(uid, st.st_gid)
    except OSError:
        os.close(fd)
        raise


def open_at(dir_fd: int, name: str, flags: int, trust: Trust) -> int:
    """Open `name` in the directory `dir_fd` and check it (see the module docstring).

    Raises UntrustedFileError for a file that is not ours, OSError as open does."""
    fd = os.open(name, flags | _FLAGS, trust.mode, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        problem = trust.problem(st)
        shared = trust.group is not None and st.st_uid == trust.uid
        wrong_mode = stat.S_IMODE(st.st_mode) != trust.mode
        if problem is None and shared and flags & os.O_CREAT and wrong_mode:
            os.fchmod(fd, trust.mode)  # the group must read it, whatever the umask
    except OSError:
        os.close(fd)
        raise
    if problem is not None:
        os.close(fd)
        raise UntrustedFileError(errno.EPERM, f"spool file {name!r} refused: {problem}")
    return fd


def is_trusted(dir_fd: int, name: str, trust: Trust) -> bool:
    """Whether `name` (not followed if a symlink) is a file the spool may remove."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return trust.problem(st) is None


def unlink_at(dir_fd: int, name: str) -> bool:
    """Remove `name` from the directory; False if it could not be removed."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        return False
    return True
