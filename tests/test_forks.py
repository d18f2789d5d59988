"""`_forks.getpid`: os.getpid() from memory, right in every child, hooks or not."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import pytest

from segment_client import _forks

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _in_child(fork: object) -> tuple[int, int]:
    """(what getpid said in the child, the child's real pid), via a pipe."""
    read, write = os.pipe()
    pid = fork()  # type: ignore[operator]
    if pid == 0:
        try:
            os.write(write, f"{_forks.getpid()} {os.getpid()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        seen, real = map(int, pipe.read().split())
    os.waitpid(pid, 0)
    return seen, real


def test_matches_os_getpid() -> None:
    assert _forks.getpid() == os.getpid()
    assert _forks.getpid() == os.getpid()


def test_right_in_a_child_of_os_fork() -> None:
    seen, real = _in_child(os.fork)
    assert seen == real != os.getpid()
    assert _forks.getpid() == os.getpid()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libc fork on Linux")
def test_right_after_a_fork_that_skips_the_python_hooks() -> None:
    """uWSGI forks in C without os.register_at_fork's hooks: the page still tells."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    seen, real = _in_child(libc.fork)
    assert seen == real != os.getpid()


def test_armed_on_linux() -> None:
    if sys.platform.startswith("linux"):
        assert _forks._page is not None  # the cheap path is the one measured
