"""SpoolQueue on the queue seam: its policy, losses() instead of a callback, a bounded
close. (Client-level behaviour is in test_spool.py.)"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from segment_client._json import dumps
from segment_client._queue import QueueLoss, QueuePolicy
from segment_client._spool import SpoolQueue


def _message(i: int) -> bytes:
    return dumps({"type": "track", "event": "E", "userId": "u", "messageId": f"m-{i}"})


def test_policy_keeps_retrying_and_keeps_messages_on_close(tmp_path: Path) -> None:
    queue = SpoolQueue(tmp_path)
    assert queue.policy == QueuePolicy(keep_retrying=True, keep_on_close=True)
    queue.close()


def test_losses_are_drained_by_the_caller_exactly_once(tmp_path: Path) -> None:
    queue = SpoolQueue(tmp_path)
    for i in range(5):
        queue.put(_message(i))
    segment = tmp_path / queue._live_seg.name
    data = bytearray(segment.read_bytes())
    data[data.index(b'"m-1"')] ^= 0x01
    data[data.index(b'"m-3"')] ^= 0x01
    segment.write_bytes(bytes(data))
    assert queue.losses() == []
    taken = queue.take(100, 500_000)
    assert taken == [_message(0), _message(2), _message(4)]
    (loss,) = queue.losses()
    assert isinstance(loss, QueueLoss)
    assert (loss.reason, loss.count, loss.queued) == ("spool_corrupt", 2, True)
    assert queue.losses() == []
    queue.ack(len(taken))
    assert queue.depth() == 0
    queue.close()


def test_close_returns_by_its_deadline_while_an_fsync_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = threading.Event()
    release = threading.Event()
    real = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        entered.set()
        release.wait(30)  # a disk that takes its time
        real(fd)

    queue = SpoolQueue(tmp_path, sync_interval=60)
    for i in range(10):
        queue.put(_message(i))
    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    try:
        queue._thread.wake()  # the sync thread starts an fsync and hangs in it
        assert entered.wait(10)
        start = time.monotonic()
        queue.close(0.2)
        elapsed = time.monotonic() - start
    finally:
        release.set()
    # Loose on purpose (a loaded machine): the point is "not the fsync's 30 s".
    assert elapsed < 3
    assert queue.put(_message(99)) == 0
    assert queue.rejection()[0] == "closed"
    # Nothing was lost: the next process on the directory finds all ten.
    other = SpoolQueue(tmp_path)
    assert other.depth() == 10
    assert other.take(100, 500_000) == [_message(i) for i in range(10)]
    other.ack(10)
    other.close()


def test_close_without_timeout_syncs_and_releases_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    queue = SpoolQueue(tmp_path, sync_interval=60)
    queue.put(_message(0))
    monkeypatch.setattr(os, "fdatasync", counting)
    queue.close()
    monkeypatch.undo()
    assert synced  # the data written since the last sync reached the disk
    other = SpoolQueue(tmp_path)  # the lock was released: adopted at once
    assert other.take(10, 500_000) == [_message(0)]
    other.ack(1)
    other.close()
    assert list(tmp_path.iterdir()) == []
