"""The on-disk spool (Client(spool_dir=...)): delivery, recovery, damage, limits, fork."""

from __future__ import annotations

import datetime as dt
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from segment_client import (
    Client,
    ConfigurationError,
    DeliveryError,
    MemoryQueue,
    QueueFullError,
    TransportError,
)
from segment_client._json import dumps
from segment_client._spool import SpoolQueue
from segment_client._spool._records import FILE_HEADER_SIZE, HEADER_SIZE
from segment_client.testing import RecordingTransport
from tests._support.spool_death import die

FAST_RETRY = {"max_retries": 0, "retry_base_delay": 0.0, "retry_max_delay": 0.01}


class SwitchTransport:
    """Refuses every batch until `up` is set; then records message ids in order."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.ids: list[str] = []
        self.attempts = 0
        self._cond = threading.Condition()

    def send(
        self, batch: Sequence[bytes], *, retry_count: int = 0, timeout: float | None = None
    ) -> None:
        with self._cond:
            self.attempts += 1
            self._cond.notify_all()
            if not self.up.is_set():
                raise TransportError("connection refused (switched off)")
            self.ids.extend(_ids(batch))

    def wait_attempts(self, count: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.attempts >= count, 10)

    def close(self) -> None:
        pass


def _ids(batch: Sequence[bytes]) -> list[str]:
    from segment_client._json import loads

    return [loads(data)["messageId"] for data in batch]


def _message(i: int, prefix: str = "m") -> bytes:
    return dumps({
        "type": "track", "event": "E", "userId": "u", "messageId": f"{prefix}-{i}",
        "timestamp": "2024-01-01T00:00:00.000Z", "properties": {"i": i},
    })


def _abandoned_writer(directory: Path, count: int, prefix: str = "m") -> tuple[Path, list[int]]:
    """A spool file as a crashed process leaves it: `count` records, no cleanup.

    Returns the segment path and each record's start offset.
    """
    queue = SpoolQueue(directory)
    offsets = []
    for i in range(count):
        offsets.append(queue.disk_bytes())
        assert queue.put(_message(i, prefix)) == i + 1
    segment = directory / queue._live_seg.name
    die(queue)  # like a process death: descriptors (and the flock) go, files stay
    return segment, offsets


def _delivered_ids(transport: RecordingTransport) -> list[str]:
    return [m["messageId"] for m in transport.messages]


def _collect_errors() -> tuple[list[tuple[DeliveryError, int]], Callable[..., None]]:
    errors: list[tuple[DeliveryError, int]] = []

    def on_error(error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        errors.append((error, len(messages)))

    return errors, on_error


def test_without_spool_dir_no_file_is_touched(
    make_client: Callable[..., Client], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    client = make_client()
    client.track("u", "E")
    assert client.flush(5)
    assert isinstance(client._consumer.queue, MemoryQueue)
    assert client.stats().spool_bytes == 0
    assert list(tmp_path.iterdir()) == []


def test_delivers_in_order_and_leaves_nothing_behind(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    client = make_client(spool_dir=tmp_path)
    ids = [client.track("u", "E", {"i": i}) for i in range(250)]
    stats = client.stats()
    assert stats.queued == 250 and stats.spool_bytes > 250 * 100
    assert client.flush(5)
    assert _delivered_ids(transport) == ids
    assert client.close_and_flush(5)
    assert client.stats().spool_bytes == 0
    assert list(tmp_path.iterdir()) == []


def test_recovery_sends_earlier_messages_first_with_their_ids_and_timestamps(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    down = RecordingTransport(fail_always=503)
    first = make_client(spool_dir=tmp_path, transport=down, **FAST_RETRY)
    stamps = [dt.datetime(2024, 1, 1, 0, 0, i, tzinfo=dt.timezone.utc) for i in range(30)]
    old = [first.track("u", "Old", {"i": i}, timestamp=ts) for i, ts in enumerate(stamps)]
    # The close gives up at its deadline but reports nothing failed: the spool keeps them.
    errors, on_error = _collect_errors()
    first._consumer._on_error = on_error
    assert first.close_and_flush(0.3) is False
    assert errors == []
    assert first.stats().failed == 0
    assert first.stats().queue_depth == 30
    assert any(p.suffix == ".seg" for p in tmp_path.iterdir())

    second = make_client(spool_dir=tmp_path)
    new = [second.track("u", "New", {"i": i}) for i in range(5)]
    assert second.close_and_flush(5)
    assert _delivered_ids(transport) == old + new
    replayed = transport.messages[:30]
    assert [m["timestamp"] for m in replayed] == [
        ts.strftime("%Y-%m-%dT%H:%M:%S.000Z") for ts in stamps
    ]
    assert second.stats().delivered == 35
    assert list(tmp_path.iterdir()) == []


def test_outage_longer_than_retry_budget_keeps_messages_until_the_collector_is_back(
    make_client: Callable[..., Client], tmp_path: Path
) -> None:
    switch = SwitchTransport()
    client = make_client(spool_dir=tmp_path, transport=switch, flush_at=10, **FAST_RETRY)
    ids = [client.track("u", "E", {"i": i}) for i in range(100)]
    # max_retries=0: one attempt is the whole budget; the spool keeps retrying past it.
    assert switch.wait_attempts(4)
    assert client.stats().failed == 0
    switch.up.set()
    assert client.flush(10)
    assert switch.ids == ids
    stats = client.stats()
    assert (stats.delivered, stats.failed, stats.queue_depth) == (100, 0, 0)


def test_size_cap_drops_and_reports_then_space_comes_back(
    make_client: Callable[..., Client], tmp_path: Path
) -> None:
    errors, on_error = _collect_errors()
    switch = SwitchTransport()
    probe = SpoolQueue(tmp_path / "probe")
    probe.put(_message(0))
    record = probe.disk_bytes() - FILE_HEADER_SIZE
    probe.close()
    cap = FILE_HEADER_SIZE + 10 * record
    client = make_client(
        spool_dir=tmp_path / "spool", spool_max_bytes=cap, transport=switch,
        on_error=on_error, **FAST_RETRY,
    )
    results = [
        client._consumer.put(_message(i), {"messageId": f"m-{i}"}) for i in range(25)
    ]
    assert results == [True] * 10 + [False] * 15
    stats = client.stats()
    assert stats.dropped == {"spool_full": 15}
    assert stats.spool_bytes == cap
    assert len(errors) == 15
    assert all(isinstance(e, QueueFullError) and "spool_max_bytes" in str(e) for e, _ in errors)
    switch.up.set()
    assert client.flush(10)
    assert switch.ids == [f"m-{i}" for i in range(10)]
    # Delivered data is reclaimed: the spool accepts messages again.
    assert client._consumer.put(_message(99), {"messageId": "m-99"})
    assert client.flush(10)
    assert switch.ids[-1] == "m-99"
    assert client.stats().dropped == {"spool_full": 15}


def test_corrupt_record_is_skipped_and_reported(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    segment, offsets = _abandoned_writer(tmp_path, 10)
    with segment.open("r+b") as f:  # flip a payload byte of the fifth record
        f.seek(offsets[4] + 20)
        byte = f.read(1)
        f.seek(offsets[4] + 20)
        f.write(bytes([byte[0] ^ 0x55]))
    errors, on_error = _collect_errors()
    client = make_client(spool_dir=tmp_path, on_error=on_error)
    client.track("u", "After", message_id="after")
    # The loss is accounted for on the consumer's thread (it drains the queue's losses).
    assert client.close_and_flush(5)
    assert client.stats().dropped == {"spool_corrupt": 1}
    assert len(errors) == 1 and errors[0][1] == 0
    assert "1 message(s) unreadable" in str(errors[0][0])
    expected = [f"m-{i}" for i in range(10) if i != 4] + ["after"]
    assert _delivered_ids(transport) == expected
    assert list(tmp_path.iterdir()) == []


def test_truncated_file_recovers_complete_records(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    segment, offsets = _abandoned_writer(tmp_path, 10)
    os.truncate(segment, offsets[9] + 15)  # a torn last record
    client = make_client(spool_dir=tmp_path)
    assert client.close_and_flush(5)
    assert _delivered_ids(transport) == [f"m-{i}" for i in range(9)]
    assert client.stats().dropped == {"spool_corrupt": 1}
    # The torn record does not keep the file alive once the rest is delivered (a kill
    # mid-write(2) can tear one: the kernel stops a write between pages on SIGKILL).
    assert list(tmp_path.iterdir()) == []


def test_damaged_file_header_and_garbage_between_records(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    segment, offsets = _abandoned_writer(tmp_path, 6)
    data = bytearray(segment.read_bytes())
    data[:16] = b"garbage!garbage!"  # the file header
    # Junk spliced in between records 2 and 3 (no record lost).
    data[offsets[3]:offsets[3]] = b"\x00junk that is not a record\xff\x00"
    segment.write_bytes(bytes(data))
    client = make_client(spool_dir=tmp_path)
    assert client.close_and_flush(5)
    assert _delivered_ids(transport) == [f"m-{i}" for i in range(6)]
    assert client.stats().dropped == {}


def test_foreign_files_are_left_alone(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not ours")
    odd = tmp_path / "something.seg"
    odd.write_bytes(b"\xffS" * 10)
    future = tmp_path / "00000000000000aa-1-abcdef.00000000.seg"
    future.write_bytes(b"SEGSPOOL v9\n\x00\x00\x00\x00" + b"future format")
    client = make_client(spool_dir=tmp_path)
    client.track("u", "E", message_id="mine")
    assert client.close_and_flush(5)
    assert _delivered_ids(transport) == ["mine"]
    assert client.stats().dropped == {}
    assert notes.read_text() == "not ours"
    assert odd.exists() and future.exists()


def test_ack_progress_survives_a_crash(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    queue = SpoolQueue(tmp_path)
    for i in range(10):
        queue.put(_message(i))
    assert len(queue.take(4, 500_000)) == 4
    queue.ack(4)
    assert len(queue.take(3, 500_000)) == 3  # in flight at the crash: sent again
    die(queue)
    client = make_client(spool_dir=tmp_path)
    assert client.close_and_flush(5)
    assert _delivered_ids(transport) == [f"m-{i}" for i in range(4, 10)]


def test_damaged_ack_file_resends_rather_than_loses(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    queue = SpoolQueue(tmp_path)
    for i in range(5):
        queue.put(_message(i))
    queue.ack(len(queue.take(2, 500_000)))
    ack = tmp_path / queue._own.ack_name
    die(queue)
    ack.write_bytes(b"\x01" * 20)
    client = make_client(spool_dir=tmp_path)
    assert client.close_and_flush(5)
    assert _delivered_ids(transport) == [f"m-{i}" for i in range(5)]


def test_a_live_writer_is_never_adopted_a_dead_one_is(tmp_path: Path) -> None:
    alive = SpoolQueue(tmp_path)
    alive.put(_message(0, "a"))
    other = SpoolQueue(tmp_path, rescan_interval=0)
    assert other.depth() == 0
    other.put(_message(0, "b"))
    assert other.take(100, 500_000) == [_message(0, "b")]
    other.ack(1)
    die(alive)  # dies
    assert other.take(100, 500_000) == [_message(0, "a")]
    other.ack(1)
    assert other.depth() == 0
    other.close()
    assert list(tmp_path.iterdir()) == []


def test_rotation_deletes_finished_segments(tmp_path: Path) -> None:
    queue = SpoolQueue(tmp_path, segment_bytes=4096)
    for i in range(100):
        assert queue.put(_message(i))
    segments = sorted(p.name for p in tmp_path.glob("*.seg"))
    assert len(segments) >= 3
    taken: list[bytes] = []
    while batch := queue.take(7, 500_000):
        taken.extend(batch)
        queue.ack(len(batch))
    assert taken == [_message(i) for i in range(100)]
    # Only the file being written is left, and it is below the reclaim threshold.
    (left,) = tmp_path.glob("*.seg")
    assert left.name >= segments[-1]
    assert queue.disk_bytes() < 4096 // 4 + FILE_HEADER_SIZE
    queue.close()
    assert list(tmp_path.iterdir()) == []


def test_own_file_damaged_while_queued_is_reported_failed(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    errors, on_error = _collect_errors()
    client = make_client(spool_dir=tmp_path, on_error=on_error, flush_interval=60)
    for i in range(5):
        client.track("u", "E", {"i": i}, message_id=f"m-{i}")
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    second = data.index(b'"m-1"')
    data[second] ^= 0x01
    segment.write_bytes(bytes(data))
    assert client.flush(5) is False
    stats = client.stats()
    assert (stats.delivered, stats.failed, stats.queue_depth) == (4, 1, 0)
    assert _delivered_ids(transport) == ["m-0", "m-2", "m-3", "m-4"]
    assert len(errors) == 1 and "unreadable" in str(errors[0][0])


def test_fork_child_writes_its_own_file(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    client = make_client(spool_dir=tmp_path, flush_interval=60)
    client.track("u", "E", message_id="parent-1")
    parent_files = {p.name for p in tmp_path.iterdir()}
    parent_queue: Any = client._consumer.queue
    assert parent_queue._live_seg.mm is not None
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            # The parent's map is shared memory: the child must never write into it.
            unmapped = parent_queue._live_seg.mm is None and parent_queue._closed
            for i in range(3):
                client.track("u", "E", message_id=f"child-{i}")
            fresh = client._consumer.queue is not parent_queue
            os.write(write_fd, b"ok" if unmapped and fresh else b"no")
        finally:
            os._exit(0)  # dies without closing: its spool file stays
    os.close(write_fd)
    assert os.read(read_fd, 2) == b"ok"
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert parent_queue._live_seg.mm is not None  # the parent's own is untouched
    child_files = {p.name for p in tmp_path.iterdir()} - parent_files
    assert {Path(name).suffix for name in child_files} == {".ack", ".seg"}
    # The parent adopts the dead child's file on its next scan and sends all four.
    client._consumer.queue._rescan_interval = 0  # type: ignore[attr-defined]
    assert client.close_and_flush(5)
    assert sorted(_delivered_ids(transport)) == ["child-0", "child-1", "child-2", "parent-1"]
    assert list(tmp_path.iterdir()) == []


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="either spool_dir or queue"):
        Client("k", spool_dir=tmp_path, queue=lambda: MemoryQueue(1))
    with pytest.raises(ConfigurationError, match="sync_mode"):
        Client("k", spool_dir=tmp_path, sync_mode=True)
    with pytest.raises(ConfigurationError, match="spool_max_bytes"):
        Client("k", spool_dir=tmp_path, spool_max_bytes=0)
    with pytest.raises(ConfigurationError, match="spool_sync_interval"):
        Client("k", spool_dir=tmp_path, spool_sync_interval=0)
    with pytest.raises(ConfigurationError, match="spool_dir"):
        Client("k", spool_dir=123)  # type: ignore[arg-type]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError, match="spool_dir must be a writable directory"):
        Client("k", spool_dir=blocker / "spool")


# -- the mapped segment: zero tail, preallocation failures, oversized records ----------


def test_zero_tail_left_by_a_crash_is_the_end_not_damage(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    segment, offsets = _abandoned_writer(tmp_path, 10)
    logical = offsets[-1] + len(_message(9)) + HEADER_SIZE
    # Dead with its file preallocated: zeros from the end of the last record on.
    assert segment.stat().st_size > logical
    assert segment.read_bytes()[logical:].count(0) == segment.stat().st_size - logical
    errors, on_error = _collect_errors()
    client = make_client(spool_dir=tmp_path, on_error=on_error)
    assert segment.stat().st_size == logical  # the adopter gave the tail back
    assert client.close_and_flush(5)
    assert _delivered_ids(transport) == [f"m-{i}" for i in range(10)]
    assert client.stats().dropped == {}
    assert errors == []
    assert list(tmp_path.iterdir()) == []


def test_record_torn_by_a_crash_before_the_zero_tail_is_reported_once(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    segment, offsets = _abandoned_writer(tmp_path, 5)
    torn_at = offsets[-1] + len(_message(4)) + HEADER_SIZE
    whole = _abandoned_record(_message(5))
    with segment.open("r+b") as f:  # the kill came in the middle of the copy
        f.seek(torn_at)
        f.write(whole[: len(whole) // 2])
    client = make_client(spool_dir=tmp_path)
    assert client.close_and_flush(5)
    assert _delivered_ids(transport) == [f"m-{i}" for i in range(5)]
    assert client.stats().dropped == {"spool_corrupt": 1}
    assert list(tmp_path.iterdir()) == []


def _abandoned_record(payload: bytes, index: int = 5) -> bytes:
    import struct
    import zlib

    check = zlib.crc32(payload) ^ index
    return struct.pack("<2sIII", b"\xffS", len(payload), check, index) + payload


def test_clean_close_cuts_the_file_to_its_records(
    make_client: Callable[..., Client], tmp_path: Path
) -> None:
    down = RecordingTransport(fail_always=503)
    client = make_client(spool_dir=tmp_path, transport=down, **FAST_RETRY)
    for i in range(20):
        client.track("u", "E", message_id=f"m-{i}")
    spooled = client.stats().spool_bytes
    assert client.close_and_flush(0.2) is False
    (segment,) = tmp_path.glob("*.seg")
    assert segment.stat().st_size == spooled
    assert segment.read_bytes()[-1:] == b"}"


def test_preallocation_failure_falls_back_to_write(
    make_client: Callable[..., Client],
    transport: RecordingTransport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    client = make_client(spool_dir=tmp_path, flush_interval=60)
    queue = client._consumer.queue
    assert queue._live_seg.mm is None  # type: ignore[attr-defined]
    ids = [client.track("u", "E", {"i": i}) for i in range(50)]
    (segment,) = tmp_path.glob("*.seg")
    assert segment.stat().st_size == client.stats().spool_bytes  # no tail: appended
    assert client.close_and_flush(5)
    assert _delivered_ids(transport) == ids
    assert client.stats().dropped == {}


def test_disk_full_at_rotation_drops_and_reports_never_raises(
    make_client: Callable[..., Client],
    transport: RecordingTransport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import segment_client._spool._writer as spool

    errors, on_error = _collect_errors()
    client = make_client(
        queue=lambda: SpoolQueue(tmp_path, segment_bytes=4096), on_error=on_error,
        flush_interval=60,
    )
    queue = client._consumer.queue
    assert queue._live_seg.mm is not None  # type: ignore[attr-defined]
    first = queue._live_seg  # type: ignore[attr-defined]
    accepted = []
    i = 0
    while queue._live_seg is first:  # type: ignore[attr-defined]
        accepted.append(client.track("u", "E", {"i": i}))
        i += 1
    # Rotated once (the new file is mapped too). The disk is full now: the next file can
    # be neither preallocated nor written.
    current = queue._live_seg  # type: ignore[attr-defined]
    assert current.mm is not None

    def full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    monkeypatch.setattr(spool, "_write", full)
    # What still fits the old file's reserved space is accepted; then nothing is.
    for _ in range(100):
        before = client.stats().queued
        message_id = client.track("u", "E", {"i": i})
        i += 1
        if client.stats().queued == before:
            break
        accepted.append(message_id)
    # The next file cannot even get its header: every further message is refused.
    assert queue._live_seg is current  # type: ignore[attr-defined]
    for k in range(30):
        client.track("u", "E", {"i": i + k})
    stats = client.stats()
    assert stats.queued == len(accepted)
    assert stats.dropped == {"spool_error": 31}
    assert len(errors) == 31
    assert all(isinstance(e, QueueFullError) and "No space left" in str(e) for e, _ in errors)
    monkeypatch.undo()
    assert client.close_and_flush(5)
    assert _delivered_ids(transport) == accepted


def test_a_record_larger_than_the_map_is_written_and_read_back(tmp_path: Path) -> None:
    queue = SpoolQueue(tmp_path, segment_bytes=4096)
    big = dumps({"messageId": "big", "blob": "x" * 10_000})
    messages = [big, _message(1), big, _message(2)]
    for data in messages:
        assert queue.put(data)
    taken: list[bytes] = []
    while batch := queue.take(3, 500_000):
        taken.extend(batch)
        queue.ack(len(batch))
    assert taken == messages
    queue.close()
    assert list(tmp_path.iterdir()) == []
