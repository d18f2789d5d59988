"""The spool's on-disk record codec: file header, records, the ack cursor. Pure functions.

A segment file is a 16-byte header, then records `magic(2) length(4) crc32(4) payload`,
little-endian. The magic starts with 0xFF, a byte UTF-8 never contains, so a reader can
find the next record after a damaged one. A mapped segment is zero-filled past its last
record until it is cut; a record never ends in a zero byte (JSON has none), so the zero
tail of a file left by a crash marks the end of its data.

Thread-safety: stateless; reads use `os.pread`, so one descriptor may be shared.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator

__all__ = [
    "CURSOR_SIZE",
    "FILE_FAMILY",
    "FILE_HEADER",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_PAYLOAD",
    "SCAN_CHUNK",
    "TAKE_CHUNK",
    "data_end",
    "pack_cursor",
    "records",
    "unpack_cursor",
]

FILE_HEADER = b"SEGSPOOL v1\n\x00\x00\x00\x00"
FILE_FAMILY = b"SEGSPOOL v"
MAGIC = b"\xffS"
HEADER = struct.Struct("<2sII")
HEADER_SIZE = HEADER.size
_CURSOR = struct.Struct("<QQI")
CURSOR_SIZE = _CURSOR.size
# Plausibility bound on a record's length when reading (the client caps messages at 32 KB).
MAX_PAYLOAD = 1 << 20
# Read sizes: a batch is at most 500 KB (typically a few dozen KB); adoption scans whole files.
TAKE_CHUNK = 64 * 1024
SCAN_CHUNK = 1024 * 1024


def records(
    fd: int, pos: int, end: int, chunk: int = TAKE_CHUNK
) -> Iterator[tuple[int, int, bytes | None, int]]:
    """Records in `[pos, end)` of `fd`: `(start, stop, payload, 0)` for each readable one,
    `(start, stop, None, lost)` for each unreadable stretch, where `lost` counts the record
    starts seen in it. Reads in chunks; deterministic for the same bytes."""
    buf = b""
    base = pos
    bad_start = -1
    lost = 0
    while pos < end:
        rel = pos - base
        if len(buf) - rel < HEADER_SIZE:
            buf = os.pread(fd, min(chunk, end - pos), pos)
            base, rel = pos, 0
            if len(buf) < HEADER_SIZE:  # a torn header at the end (or a shorter file)
                if bad_start < 0:
                    bad_start = pos
                if buf[:2] == MAGIC:
                    lost += 1
                pos = end
                break
        magic, length, crc = HEADER.unpack_from(buf, rel)
        stop = pos + HEADER_SIZE + length
        ok = magic == MAGIC and 0 < length <= MAX_PAYLOAD and stop <= end
        if ok and base + len(buf) < stop:
            buf = os.pread(fd, min(max(chunk, stop - pos), end - pos), pos)
            base, rel = pos, 0
            ok = len(buf) >= stop - pos
        if ok:
            payload = buf[rel + HEADER_SIZE : rel + HEADER_SIZE + length]
            ok = zlib.crc32(payload) == crc
            if ok:
                if bad_start >= 0:
                    yield bad_start, pos, None, lost
                    bad_start, lost = -1, 0
                yield pos, stop, payload, 0
                pos = stop
                continue
        # Unreadable at pos: skip to the next record start.
        if bad_start < 0:
            bad_start = pos
        if magic == MAGIC:
            lost += 1
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
        yield bad_start, end, None, lost


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


def pack_cursor(seq: int, offset: int) -> bytes:
    """The ack file's content: delivery reached `offset` of segment `seq`."""
    blob = struct.pack("<QQ", seq, offset)
    return blob + struct.pack("<I", zlib.crc32(blob))


def unpack_cursor(raw: bytes) -> tuple[int, int] | None:
    """`(seq, offset)`, or None when `raw` is short (never written).

    Raises ValueError when the checksum does not match (a damaged ack file)."""
    if len(raw) != CURSOR_SIZE:
        return None
    seq, offset, crc = _CURSOR.unpack(raw)
    if zlib.crc32(raw[:16]) != crc:
        raise ValueError("damaged spool cursor")
    return seq, offset
