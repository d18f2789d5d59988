"""The spool's on-disk record codec: file header, records, the ack cursor. Pure functions.

A segment file (format 2) is a 16-byte header, `SEGSPOOL v2\\n` and the writer-wide index
of its first record (u32), then records `magic(2) length(4) check(4) index(4) payload`,
little-endian, where `check` is the payload's CRC-32 xor the record's index: a record is
intact only if its payload, length and index all survived. Indexes count up by one per
record of a writer, so the number of records lost in a damaged stretch is the gap between
the indexes around it, however the damage hid their starts. Format 1 (no index) is still
read. The magic starts with 0xFF, a byte UTF-8 never contains, so a reader can find the
next record after a damaged one. A mapped segment is zero-filled past its last record
until it is cut; a record never ends in a zero byte (JSON has none), so the zero tail of
a file left by a crash marks the end of its data.

Thread-safety: stateless; reads use `os.pread`, so one descriptor may be shared.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "CURSOR_SIZE",
    "FILE_FAMILY",
    "FILE_HEADER_SIZE",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_PAYLOAD",
    "SCAN_CHUNK",
    "TAKE_CHUNK",
    "Format",
    "data_end",
    "file_header",
    "pack_cursor",
    "parse_file_header",
    "records",
    "unpack_cursor",
]

FILE_FAMILY = b"SEGSPOOL v"
FILE_HEADER_SIZE = 16
_V1_HEADER = b"SEGSPOOL v1\n\x00\x00\x00\x00"
_V2_PREFIX = b"SEGSPOOL v2\n"
MAGIC = b"\xffS"
HEADER = struct.Struct("<2sIII")  # format 2
HEADER_SIZE = HEADER.size
_V1_RECORD = struct.Struct("<2sII")
_U32 = struct.Struct("<I")
# The cursor: segment seq, offset, index of the record at offset, crc (format 1: no index).
_CURSOR = struct.Struct("<QQQI")
_V1_CURSOR = struct.Struct("<QQI")
CURSOR_SIZE = _CURSOR.size
# Plausibility bound on a record's length when reading (the client caps messages at 32 KB).
MAX_PAYLOAD = 1 << 20
# Read sizes: a batch is at most 500 KB (typically a few dozen KB); adoption scans whole files.
TAKE_CHUNK = 64 * 1024
SCAN_CHUNK = 1024 * 1024
_MASK = 0xFFFFFFFF
_HALF = 1 << 31
_UNKNOWN = (1 << 64) - 1  # a cursor's index when the segment's numbering is not known


@dataclass(frozen=True)
class Format:
    """How a segment's records are laid out."""

    version: int
    first: int | None  # the index of the segment's first record (None: not known)


def file_header(first: int) -> bytes:
    """The header of a new (format 2) segment whose first record has index `first`."""
    return _V2_PREFIX + _U32.pack(first & _MASK)


def parse_file_header(header: bytes) -> Format | None:
    """The segment's format, `Format(2, None)` for a damaged header, None for a format
    this version does not know (a newer client's file: left alone)."""
    if header.startswith(_V2_PREFIX) and len(header) == FILE_HEADER_SIZE:
        return Format(2, _U32.unpack_from(header, len(_V2_PREFIX))[0])
    if header == _V1_HEADER:
        return Format(1, None)
    if header.startswith(FILE_FAMILY) and len(header) == FILE_HEADER_SIZE:
        return None
    return Format(2, None)


def records(
    fd: int,
    pos: int,
    end: int,
    chunk: int = TAKE_CHUNK,
    version: int = 2,
    expect: int | None = None,
) -> Iterator[tuple[int, int, bytes | None, int]]:
    """Records in `[pos, end)` of `fd`: `(start, stop, payload, index)` for each intact
    one, `(start, stop, None, lost)` for each unreadable stretch (or gap in the indexes).

    `expect` is the index of the record at `pos` when known. `lost` is the gap in the
    indexes around the stretch when they are known (format 2), else the record starts
    seen in it; for a stretch at the end of the range it is always the record starts
    seen (the caller may know better). Format 1 records have no index (yields 0).
    Reads in chunks; deterministic for the same bytes."""
    if version < 2:
        expect = None
    numbered = version >= 2
    hs = HEADER_SIZE if numbered else _V1_RECORD.size
    unpack = HEADER.unpack_from if numbered else _V1_RECORD.unpack_from
    crc32 = zlib.crc32
    index = 0
    buf = b""
    base = pos
    bad_start = -1
    seen = 0
    while pos < end:
        rel = pos - base
        if len(buf) - rel < hs:
            buf = os.pread(fd, min(chunk, end - pos), pos)
            base, rel = pos, 0
            if len(buf) < hs:  # a torn header at the end (or a shorter file)
                if bad_start < 0:
                    bad_start = pos
                if buf[:2] == MAGIC:
                    seen += 1
                pos = end
                break
        if numbered:
            magic, length, check, index = unpack(buf, rel)
        else:
            magic, length, check = unpack(buf, rel)
        stop = pos + hs + length
        ok = magic == MAGIC and 0 < length <= MAX_PAYLOAD and stop <= end
        if ok and base + len(buf) < stop:
            buf = os.pread(fd, min(max(chunk, stop - pos), end - pos), pos)
            base, rel = pos, 0
            ok = len(buf) >= stop - pos
        if ok:
            payload = buf[rel + hs : rel + hs + length]
            ok = crc32(payload) ^ index == check
            if ok:
                if numbered:
                    if expect is not None and index != expect:
                        gap = (index - expect) & _MASK  # numbers wrap at 2**32
                        if gap < _HALF:
                            seen = gap  # the gap is exact, whatever the damage hid
                    expect = (index + 1) & _MASK
                if bad_start >= 0 or seen:
                    yield (pos if bad_start < 0 else bad_start), pos, None, seen
                    bad_start, seen = -1, 0
                yield pos, stop, payload, index
                pos = stop
                continue
        # Unreadable at pos: skip to the next record start.
        if bad_start < 0:
            bad_start = pos
        if magic == MAGIC:
            seen += 1
        found = buf.find(MAGIC, rel + 1)
        while found < 0:
            searched = base + len(buf)
            if searched >= end or len(buf) < 2:
                break
            # Keep the last byte: a magic may straddle the chunk boundary.
            base = searched - 1
            buf = os.pread(fd, min(chunk, end - base), base)
            if len(buf) < 2:
                break
            found = buf.find(MAGIC)
        pos = end if found < 0 else min(end, base + found)
    if bad_start >= 0:
        yield bad_start, end, None, seen


def data_end(fd: int, size: int) -> int:
    """The offset after the last non-zero byte of `fd` (of its first `size` bytes)."""
    pos = size
    while pos > 0:
        start = max(0, pos - SCAN_CHUNK)
        chunk = os.pread(fd, pos - start, start)
        if not chunk:
            return start
        data = chunk.rstrip(b"\0")
        if data:
            return start + len(data)
        pos = start
    return 0


def pack_cursor(seq: int, offset: int, index: int | None) -> bytes:
    """The ack file's content: delivery reached `offset` (record `index`, None when not
    known) of segment `seq`."""
    blob = struct.pack("<QQQ", seq, offset, _UNKNOWN if index is None else index)
    return blob + _U32.pack(zlib.crc32(blob))


def unpack_cursor(raw: bytes) -> tuple[int, int, int | None] | None:
    """`(seq, offset, index)` (index None from a format 1 file), or None when `raw` is
    empty or short (never written). Raises ValueError when the checksum does not match."""
    if len(raw) >= CURSOR_SIZE:
        seq, offset, index, crc = _CURSOR.unpack_from(raw)
        if zlib.crc32(raw[:24]) == crc:
            return seq, offset, None if index == _UNKNOWN else index
    if len(raw) >= _V1_CURSOR.size:
        seq, offset, crc = _V1_CURSOR.unpack_from(raw)
        if zlib.crc32(raw[:16]) == crc:
            return seq, offset, None
        raise ValueError("damaged spool cursor")
    return None
