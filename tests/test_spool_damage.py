"""Damaged spool files: every damaged record is counted and reported, every intact one
is delivered, whatever the damage hid (record starts, lengths, a segment's end)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from segment_client._json import dumps
from segment_client._spool import SpoolQueue


def _message(i: int) -> bytes:
    return dumps({
        "type": "track", "event": "E", "userId": "u", "messageId": f"m-{i}",
        "properties": {"i": i, "pad": "x" * (i % 97)},
    })


def _dead_writer(directory: Path, count: int, segment_bytes: int) -> list[tuple[str, int, int]]:
    """A crashed writer's files; returns (segment name, start, stop) of each record."""
    queue = SpoolQueue(directory, segment_bytes=segment_bytes)
    spans = []
    for i in range(count):
        data = _message(i)
        before = queue._live_seg
        start = before.size
        assert queue.put(data)
        segment = queue._live_seg
        if segment is not before:  # rotated: the record opens the new segment
            start = segment.start
        spans.append((segment.name, start, segment.size))
    queue._forget()
    return spans


def _damage(directory: Path, rnd: random.Random, spans: list[tuple[str, int, int]],
            writes: list[tuple[int, int]]) -> set[int]:
    """Overwrite `writes` ((record number, length)) with random bytes from a random
    point of that record; returns the records whose bytes changed."""
    names = {name for name, _, _ in spans}
    files = {name: bytearray((directory / name).read_bytes()) for name in names}
    original = {name: bytes(data) for name, data in files.items()}
    for record, length in writes:
        name, start, stop = spans[record]
        at = rnd.randrange(start, stop)
        data = files[name]
        end = min(len(data), at + length)
        data[at:end] = rnd.randbytes(end - at)
    for name, data in files.items():
        (directory / name).write_bytes(bytes(data))
    return {
        i for i, (name, start, stop) in enumerate(spans)
        if original[name][start:stop] != bytes(files[name][start:stop])
    }


def _drain(directory: Path) -> tuple[list[bytes], int]:
    queue = SpoolQueue(directory)
    taken: list[bytes] = []
    while batch := queue.take(100, 500_000):
        taken.extend(batch)
        queue.ack(len(batch))
    lost = sum(loss.count for loss in queue.losses() if loss.reason == "spool_corrupt")
    queue.close()
    return taken, lost


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_in_12_records_are_12_records_lost(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    spans = _dead_writer(tmp_path, 10_000, 16 << 20)
    chosen = rnd.sample(range(10_000 - 1), 12)  # the very last record is kept (see docs)
    damaged = _damage(tmp_path, rnd, spans, [(i, rnd.randrange(1, 4)) for i in chosen])
    taken, lost = _drain(tmp_path)
    assert lost == len(damaged)
    assert taken == [_message(i) for i in range(10_000) if i not in damaged]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", range(4))
def test_a_random_block_over_many_records_counts_each_of_them(
    tmp_path: Path, seed: int
) -> None:
    rnd = random.Random(seed)
    spans = _dead_writer(tmp_path, 10_000, 16 << 20)
    first = rnd.randrange(100, 9_000)
    damaged = _damage(tmp_path, rnd, spans, [(first, 4_000), (first + 400, 30)])
    assert len(damaged) > 12
    taken, lost = _drain(tmp_path)
    assert lost == len(damaged)
    assert taken == [_message(i) for i in range(10_000) if i not in damaged]


def test_damage_at_the_end_of_a_rotated_segment_is_counted_from_the_next_one(
    tmp_path: Path,
) -> None:
    rnd = random.Random(7)
    spans = _dead_writer(tmp_path, 3_000, 64 * 1024)
    names = sorted({name for name, _, _ in spans})
    assert len(names) >= 4
    # The last 5 records of the second segment, start markers included.
    last = max(i for i, (name, _, _) in enumerate(spans) if name == names[1])
    name, start, _ = spans[last - 4]
    path = tmp_path / name
    data = bytearray(path.read_bytes())
    data[start:] = rnd.randbytes(len(data) - start)
    path.write_bytes(bytes(data))
    taken, lost = _drain(tmp_path)
    assert lost == 5
    assert taken == [_message(i) for i in range(3_000) if not last - 4 <= i <= last]


def test_a_damaged_file_header_costs_no_count_after_a_second_crash(tmp_path: Path) -> None:
    spans = _dead_writer(tmp_path, 400, 16 * 1024)
    names = sorted({name for name, _, _ in spans})
    second = tmp_path / names[1]
    data = bytearray(second.read_bytes())
    data[:16] = b"garbage!garbage!"  # the number of its first record is gone
    second.write_bytes(bytes(data))
    in_first = sum(1 for name, _, _ in spans if name == names[0])
    adopter = SpoolQueue(tmp_path)
    assert adopter.losses() == []
    taken: list[bytes] = []
    while len(taken) < in_first:
        batch = adopter.take(in_first - len(taken), 500_000)
        taken.extend(batch)
        adopter.ack(len(batch))
    adopter._forget()  # dies too, its progress at the start of the damaged file
    taken_after, lost = _drain(tmp_path)
    assert lost == 0
    assert taken + taken_after == [_message(i) for i in range(400)]
