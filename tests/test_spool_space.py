"""The spool on small and full disks: space given back promptly, a file size limit that
costs no message, a process that starts on a full disk and drains it.

The small disks are a size-capped tmpfs (mounting needs root: skipped without it) and
RLIMIT_FSIZE in a child process; the in-process tests inject the free space and a full
disk.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import segment_client._spool._writer as writer_side
from segment_client import Client
from segment_client._json import dumps
from segment_client._spool import SpoolQueue
from segment_client.collector import Collector
from segment_client.testing import RecordingTransport

WORKER = str(Path(__file__).parent / "_support" / "spool_worker.py")

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux file systems")


def _message(i: int) -> bytes:
    return dumps({"type": "track", "event": "E", "userId": "u", "messageId": f"m-{i}",
                  "properties": {"pad": "x" * 200}})


def _run(*args: Any, timeout: float = 300) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, WORKER, *map(str, args)], capture_output=True, text=True,
        timeout=timeout, check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.fixture(name="small_disk")
def _small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`small_disk("3m")`: a tmpfs of that size, mounted for the test (needs root)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir(mode=0o700)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_small_disk_with_the_collector_up_drops_nothing(
    small_disk: Callable[[str], Path],
) -> None:
    disk = small_disk("3m")
    with Collector() as collector:
        result = _run("flood", 30_000, disk / "spool", collector.url)
        received = collector.stats()["total"]
    stats = result["stats"]
    # 30,000 messages of ~300 bytes (3 times the disk) pass through a 3 MiB disk.
    assert stats["dropped"] == {}
    assert result["reported"] == 0
    assert stats["delivered"] == received == 30_000
    assert stats["queued"] == stats["delivered"] + stats["failed"]
    assert result["largest_file"] <= 3 * 1024 * 1024 // 4
    assert result["files_left"] == []


def test_file_size_limit_with_the_collector_up_drops_nothing(tmp_path: Path) -> None:
    limit = 1 << 20  # ulimit -f 1024
    with Collector() as collector:
        result = _run("flood", 20_000, tmp_path / "spool", collector.url, limit)
        received = collector.stats()["total"]
    stats = result["stats"]
    assert stats["dropped"] == {}
    assert result["reported"] == 0
    assert stats["delivered"] == received == 20_000
    assert result["largest_file"] <= limit
    assert result["files_left"] == []


def test_a_new_process_starts_on_a_full_disk_and_delivers_everything_spooled(
    small_disk: Callable[[str], Path],
    make_client: Callable[..., Client],
    transport: RecordingTransport,
) -> None:
    disk = small_disk("2m")
    spool = disk / "spool"
    filled = _run("fill", 20_000, spool)
    accepted = filled["accepted"]
    assert filled["closed"] is False and filled["left"] == len(accepted) > 1000
    assert set(filled["dropped"]) == {"spool_error"}
    # Whatever room is left goes to another file: the disk is now completely full.
    filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError) as full:
            while os.write(filler, b"\xaa" * 4096):
                pass
    finally:
        os.close(filler)
    assert full.value.errno == errno.ENOSPC
    client = make_client(spool_dir=spool)  # starts sending what it adopted at once
    assert client.stats().queued == len(accepted)
    assert client.flush(30)
    assert [m["messageId"] for m in transport.messages] == accepted
    client.track("u", "After", message_id="after")  # the delivered files gave room back
    assert client.close_and_flush(30)
    assert [m["messageId"] for m in transport.messages][-1] == "after"
    assert client.stats().dropped == {}
    assert list(spool.iterdir()) == []


def _abandoned(directory: Path, count: int) -> list[bytes]:
    queue = SpoolQueue(directory)
    messages = [_message(i) for i in range(count)]
    for data in messages:
        assert queue.put(data)
    queue._forget()  # like a process death: descriptors (and the flock) go, files stay
    return messages


def test_no_room_for_a_new_file_still_starts_and_drains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = _abandoned(tmp_path, 300)

    def no_space(*args: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    monkeypatch.setattr(writer_side, "_write", no_space)
    queue = SpoolQueue(tmp_path)  # no room even for the header of its own file
    assert queue.depth() == 300
    assert queue.put(_message(999)) == 0
    assert queue.rejection()[0] == "spool_error"
    assert "No space left" in queue.rejection()[1]
    taken: list[bytes] = []
    while batch := queue.take(100, 500_000):
        taken.extend(batch)
        queue.ack(len(batch))
    assert taken == messages
    assert queue.losses() == []
    # Space is back: the next put creates the file.
    monkeypatch.undo()
    queue.space_retry_interval = 0
    assert queue.put(_message(1000)) == 1
    assert queue.take(10, 500_000) == [_message(1000)]
    queue.ack(1)
    queue.close()
    assert list(tmp_path.iterdir()) == []


def test_segments_shrink_with_the_free_space_and_go_once_delivered(tmp_path: Path) -> None:
    free = 400_000  # bytes the disk has left (injected)
    queue = SpoolQueue(tmp_path, free_space=lambda fd: free)
    largest = held = 0
    for round_ in range(20):
        for i in range(100):
            assert queue.put(_message(round_ * 100 + i))
        sizes = [p.stat().st_size for p in tmp_path.glob("*.seg")]
        largest = max(largest, *sizes)
        held = max(held, sum(sizes))
        while batch := queue.take(50, 500_000):
            queue.ack(len(batch))
    # 2,000 messages of ~280 bytes (560 KB) through segments of a quarter of the free
    # space; what is delivered does not stay on the disk.
    assert largest <= free // 4
    assert held <= 2 * (free // 4)
    queue.close()
    assert list(tmp_path.iterdir()) == []
