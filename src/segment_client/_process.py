"""Process events every consumer must see: fork, interpreter exit, multiprocessing exit.

Consumers register here (weakly); this module knows only the `ProcessAware` protocol.
After `os.fork()` each one resets itself in the child; at interpreter exit, and in a
`multiprocessing` child (which ends with `os._exit()`, skipping `atexit`), each one still
open in this process gets a bounded close.
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from typing import Protocol

__all__ = ["ProcessAware", "close_with_multiprocessing", "live", "register"]


class ProcessAware(Protocol):
    """What the hooks call. Both methods must be safe to call more than once."""

    def reset_after_fork(self) -> None:
        """In a forked child: start over with fresh locks and an empty queue."""
        ...

    def close_at_exit(self) -> None:
        """A bounded close, when still open in this process."""
        ...


# Consumers, not clients, are tracked: a client dropped without closing leaves its
# consumer (kept alive by its thread) with messages that must still go out.
_live: weakref.WeakSet[ProcessAware] = weakref.WeakSet()


def register(consumer: ProcessAware) -> None:
    """Call `consumer`'s hooks at fork and at exit from now on."""
    _live.add(consumer)


def live() -> list[ProcessAware]:
    """The registered consumers still alive."""
    return list(_live)


def _after_fork_in_child() -> None:
    for consumer in list(_live):
        consumer.reset_after_fork()


def _close_all_at_exit() -> None:
    for consumer in list(_live):
        consumer.close_at_exit()


def _close_at_exit(ref: weakref.ReferenceType[ProcessAware]) -> None:
    consumer = ref()
    if consumer is not None:
        consumer.close_at_exit()


def close_with_multiprocessing(consumer: ProcessAware) -> None:
    """In a process that uses `multiprocessing`, also close `consumer` from its
    finalizers (they run where `atexit` does not)."""
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, _close_at_exit, args=(weakref.ref(consumer),), exitpriority=10)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
