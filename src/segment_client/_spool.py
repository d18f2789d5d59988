"""The on-disk spool: a durable `MessageQueue` behind `Client(spool_dir=...)`.

Every accepted message is copied into this process's own spool file before the call
returns: into a shared memory map of a preallocated segment (the page cache: it survives
the death of the process, and costs no system call), or, where the space cannot be
preallocated, with one `os.write`; never an fsync on the caller's thread. The consumer
reads batches back from the file, records what it finished in an ack file, and deletes
fully finished segment files. A process that starts on the same directory adopts the
files of processes that are gone (a non-blocking `flock` succeeds only on those) and sends
them first. See docs/spool.md for the durability contract.

Layout of a spool directory (shared by every process using it):

    <writer>.ack            the writer's lock (flock held while it lives) and ack cursor
    <writer>.<seq>.seg      segments: a 16-byte file header, then records

A writer is one `SpoolQueue` in one process; `<writer>` is `<time_ns hex>-<pid>-<random>`,
so names sort by age. A record is `magic(2) length(4) crc32(4) payload`, little-endian;
the magic starts with 0xFF, a byte UTF-8 never contains, so a reader can find the next
record after a damaged one. A mapped segment is preallocated (posix_fallocate, so a write
into it can never fault on a full disk) and zero-filled past its last record until it is
rotated or closed, when it is cut to its logical size; a reader takes the zero tail of a
file left by a crash for its end (a record never ends in a zero byte: JSON has none).
Other names in the directory are left alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import mmap
import os
import re
import secrets
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Iterator
from pathlib import Path

from ._exceptions import ConfigurationError, DeliveryError
from ._queue import LossReporter

__all__ = ["DEFAULT_SPOOL_MAX_BYTES", "DEFAULT_SPOOL_SYNC_INTERVAL", "SpoolQueue"]

logger = logging.getLogger("segment_client")

DEFAULT_SPOOL_MAX_BYTES = 1 << 30
DEFAULT_SPOOL_SYNC_INTERVAL = 1.0
DEFAULT_SEGMENT_BYTES = 16 << 20
DEFAULT_RESCAN_INTERVAL = 10.0

FILE_HEADER = b"SEGSPOOL v1\n\x00\x00\x00\x00"
_FILE_FAMILY = b"SEGSPOOL v"
_MAGIC = b"\xffS"
_REC = struct.Struct("<2sII")
_HS = _REC.size
_ACK = struct.Struct("<QQI")
# Plausibility bound on a record's length when reading (the client caps messages at 32 KB).
_MAX_PAYLOAD = 1 << 20
# Pages of the map the writer has moved past are released every this many bytes, so the
# map adds at most about this much to the process's resident size (the data stays in the
# page cache and the file: madvise(MADV_DONTNEED) on a shared file map only unmaps).
_MAP_WINDOW = 1 << 20
# Read sizes: a batch is at most 500 KB (typically a few dozen KB); adoption scans whole files.
_TAKE_CHUNK = 64 * 1024
_SCAN_CHUNK = 1024 * 1024
_PACK = _REC.pack
_PACK_INTO = _REC.pack_into
_crc32 = zlib.crc32
_write = os.write
_NAME = re.compile(r"^([0-9a-f]{16}-\d+-[0-9a-f]{6})\.(?:ack|(\d{8})\.seg)$")


class _Segment:
    __slots__ = ("cap", "disk", "fd", "limit", "mm", "path", "seq", "size", "start", "unread")

    def __init__(self, path: str, seq: int, size: int, start: int, unread: int) -> None:
        self.path = path
        self.seq = seq
        self.size = size  # bytes that hold complete records (the logical end)
        self.disk = size  # bytes the file occupies (counted against the cap)
        self.start = start  # offset of the first record
        self.unread = unread  # records not yet taken
        self.fd: int | None = None
        self.mm: mmap.mmap | None = None  # our live segment's map (writes go there)
        self.cap = 0  # bytes mapped (and preallocated) when mm is set
        self.limit = 0  # put copies into the map up to here, then releases pages behind


class _Writer:
    """One writer's files: our own (`own`) or adopted from a process that is gone."""

    __slots__ = ("ack_fd", "ack_path", "own", "read_idx", "read_off", "segments", "unread", "wid")

    def __init__(self, wid: str, ack_path: str, ack_fd: int, own: bool) -> None:
        self.wid = wid
        self.ack_path = ack_path
        self.ack_fd = ack_fd
        self.own = own
        self.segments: list[_Segment] = []
        self.read_idx = 0
        self.read_off = 0
        self.unread = 0


def _records(
    fd: int, pos: int, end: int, chunk: int = _TAKE_CHUNK
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
        if len(buf) - rel < _HS:
            buf = os.pread(fd, min(chunk, end - pos), pos)
            base, rel = pos, 0
            if len(buf) < _HS:  # a torn header at the end (or a file shorter than we knew)
                if bad_start < 0:
                    bad_start = pos
                if buf[:2] == _MAGIC:
                    lost += 1
                pos = end
                break
        magic, length, crc = _REC.unpack_from(buf, rel)
        stop = pos + _HS + length
        ok = magic == _MAGIC and 0 < length <= _MAX_PAYLOAD and stop <= end
        if ok and base + len(buf) < stop:
            buf = os.pread(fd, min(max(chunk, stop - pos), end - pos), pos)
            base, rel = pos, 0
            ok = len(buf) >= stop - pos
        if ok:
            payload = buf[rel + _HS : rel + _HS + length]
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
        if magic == _MAGIC:
            lost += 1
        found = buf.find(_MAGIC, rel + 1)
        while found < 0:
            searched = base + len(buf)
            if searched >= end or len(buf) < 2:
                break
            # Keep the last byte: a magic may straddle the chunk boundary.
            base = searched - 1
            buf = os.pread(fd, min(chunk, end - base), base)
            if len(buf) < 2:
                break
            found = buf.find(_MAGIC)
        pos = end if found < 0 else min(end, base + found)
    if bad_start >= 0:
        yield bad_start, end, None, lost


def _data_end(fd: int, size: int) -> int:
    """The offset after the last non-zero byte of `fd` (of its first `size` bytes)."""
    pos = size
    while pos > 0:
        start = max(0, pos - _SCAN_CHUNK)
        chunk = os.pread(fd, pos - start, start)
        if not chunk:
            return start
        data = chunk.rstrip(b"\0")
        if data:
            return start + len(data)
        pos = start
    return 0


_live: weakref.WeakSet[SpoolQueue] = weakref.WeakSet()


def _forget_inherited() -> None:
    # After fork the child holds copies of the parent's descriptors, and with them the
    # parent's flocks (flock locks belong to the open file description): close them so a
    # parent that dies can be adopted. Never unlock or unlink: the parent still owns them.
    pid = os.getpid()
    for spool in list(_live):
        if spool._pid != pid:
            spool._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited)


class SpoolQueue:
    """A durable `MessageQueue` in `directory`. Thread-safe.

    `put` appends to this process's spool file and never blocks on the disk beyond one
    `write` (no fsync); it returns 0 (a drop, reported by the client) when the spool holds
    `max_bytes` or the write fails. `take`/`ack` run on the consumer thread. A small
    background thread fsyncs every `sync_interval` seconds (None: leave it to the OS).

    Args:
        directory: the spool directory (created if missing); may be shared by processes.
        max_bytes: bytes of spool files this queue may hold (its own and adopted ones).
        sync_interval: seconds between fsyncs of data written since the last one.
        segment_bytes: size at which the spool file is rotated (finished ones are deleted).
        rescan_interval: seconds between looks for files of processes that are gone.
    """

    durable = True

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        sync_interval: float | None = DEFAULT_SPOOL_SYNC_INTERVAL,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        rescan_interval: float = DEFAULT_RESCAN_INTERVAL,
    ) -> None:
        self._dir = os.fspath(directory)
        self._max_bytes = max_bytes
        self._sync_interval = sync_interval
        self._segment_bytes = max(segment_bytes, 4096)
        self._reclaim_bytes = max(1, min(self._segment_bytes, max_bytes) // 4)
        self._rescan_interval = rescan_interval
        self._pid = os.getpid()
        self._lock = threading.Lock()  # the caller side: put and the counters
        self._rlock = threading.RLock()  # the consumer side: take, ack, adoption, close
        self._sync_lock = threading.Lock()  # an fsync and the closing of a segment's fd
        self._start_lock = threading.Lock()
        self._closed = False
        self._depth = 0
        self._bytes = 0  # bytes of our files but the live segment's (put adds that)
        self._rejection = ("spool_full", "the spool is full; the message was dropped")
        self._taken: list[tuple[_Writer, _Segment, int]] = []
        self._writers: list[_Writer] = []  # adopted ones (oldest first), then our own
        self._skipped: set[str] = set()  # writers whose files this process leaves alone
        self._reporter: LossReporter | None = None
        self._reports: list[tuple[str, DeliveryError, int, bool]] = []
        self._dirty: list[_Segment] = []  # rotated segments not yet fsynced
        self._synced: tuple[_Segment | None, int] = (None, 0)  # the live segment, synced to
        self._dir_dirty = False
        self._acks_dirty: set[int] = set()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._last_scan = 0.0
        try:
            Path(self._dir).mkdir(parents=True, exist_ok=True)
            self._dir_fd = os.open(self._dir, os.O_RDONLY)
            self._own = self._create_writer()
        except OSError as exc:
            raise ConfigurationError(
                f"spool_dir must be a writable directory, got {self._dir!r}: {exc}"
            ) from exc
        self._live_seg = self._own.segments[-1]
        with self._rlock:
            self._scan()
        _live.add(self)

    def _create_writer(self) -> _Writer:
        wid = f"{time.time_ns():016x}-{os.getpid()}-{secrets.token_hex(3)}"
        ack_path = os.path.join(self._dir, wid + ".ack")
        # Locked before it appears under its name, so no scanner can take it for the file
        # of a process that is gone.
        tmp_path = ack_path + ".new"
        ack_fd = os.open(tmp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(ack_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp_path, ack_path)
        writer = _Writer(wid, ack_path, ack_fd, own=True)
        self._writers.append(writer)
        self._skipped.add(wid)
        segment = self._new_segment(writer, 0)
        writer.read_off = segment.start
        self._write_cursor(writer, segment.seq, segment.start)
        return writer

    def _new_segment(self, writer: _Writer, seq: int, need: int = 0) -> _Segment:
        path = os.path.join(self._dir, f"{writer.wid}.{seq:08d}.seg")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            if os.write(fd, FILE_HEADER) != len(FILE_HEADER):
                raise OSError(errno.ENOSPC, "short write of the spool file header")
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        segment = _Segment(path, seq, len(FILE_HEADER), len(FILE_HEADER), 0)
        segment.fd = fd
        self._map(segment, need)
        writer.segments.append(segment)
        self._dir_dirty = True
        return segment

    def _map(self, segment: _Segment, need: int) -> None:
        """Preallocate and map `segment` so that puts copy into it without a system call.

        The space is reserved up front: a write into a mapped page the file system cannot
        back would kill the process with SIGBUS, where posix_fallocate fails cleanly
        (ENOSPC, EFBIG under RLIMIT_FSIZE). If it fails, or the file system cannot map,
        the segment is written with write(2), which reports a full disk per message.
        """
        assert segment.fd is not None
        page = mmap.PAGESIZE
        cap = max(min(self._segment_bytes, self._max_bytes), segment.start + need)
        cap = -(-cap // page) * page
        try:
            os.posix_fallocate(segment.fd, 0, cap)
            prot = mmap.PROT_READ | mmap.PROT_WRITE
            segment.mm = mmap.mmap(segment.fd, cap, mmap.MAP_SHARED, prot)
        except (OSError, ValueError, AttributeError) as exc:
            logger.debug("spool file %s not mapped: %s", segment.path, exc)
            # Give back whatever was allocated; appends continue at the logical end.
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, segment.size)
            return
        segment.cap = cap
        segment.limit = min(cap, _MAP_WINDOW)
        segment.disk = cap

    @staticmethod
    def _release_pages(segment: _Segment, end: int) -> None:
        """Unmap the pages of `segment` before its write position, keep `end` mapped."""
        mm = segment.mm
        assert mm is not None
        window = -(-end // _MAP_WINDOW) * _MAP_WINDOW
        done = segment.size // mmap.PAGESIZE * mmap.PAGESIZE
        with contextlib.suppress(OSError, ValueError, AttributeError):
            mm.madvise(mmap.MADV_DONTNEED, 0, done)
        segment.limit = min(segment.cap, window)

    def _unmap(self, segment: _Segment) -> None:
        """Stop mapping `segment` and cut it to its logical size (its zero tail goes).

        Under _lock, or once nothing writes any more. Raises OSError if the cut fails
        (then appending with write(2) would leave zeros between records)."""
        mm, segment.mm = segment.mm, None
        if mm is None:
            return
        mm.close()
        segment.cap = segment.limit = 0
        if segment.fd is not None:
            os.ftruncate(segment.fd, segment.size)
            segment.disk = segment.size

    # -- the MessageQueue protocol ------------------------------------------------------

    def put(self, data: bytes) -> int:
        # The caller's cost: a copy into the mapped segment (the page cache, no system
        # call) and a few counters; kept lean on purpose.
        length = len(data)
        crc = _crc32(data)
        with self._lock:
            segment = self._live_seg
            pos = segment.size
            end = pos + _HS + length
            if self._closed or self._bytes + end > self._max_bytes:
                return self._refuse()
            mm = segment.mm
            if mm is not None and end <= segment.limit:
                # Header first, then the payload: a copy torn by a kill fails the CRC.
                _PACK_INTO(mm, pos, _MAGIC, length, crc)
                mm[pos + _HS : end] = data
                segment.size = end
            elif not self._put_slow(segment, _PACK(_MAGIC, length, crc) + data):
                return 0
            else:
                segment = self._live_seg
            segment.unread += 1
            self._depth = depth = self._depth + 1
        if self._thread is None:
            self._start_thread()
        return depth

    def _put_slow(self, segment: _Segment, record: bytes) -> bool:
        """Rotate if needed, then append `record` to the live segment. Under _lock.

        False (and the rejection set) if it could not be written."""
        size = len(record)
        try:
            end = segment.size + size
            if segment.size > segment.start and (
                end > self._segment_bytes or (segment.mm is not None and end > segment.cap)
            ):
                segment = self._rotate(size)
                end = segment.size + size
            if segment.mm is not None:
                if end <= segment.cap:
                    if end > segment.limit:
                        self._release_pages(segment, end)
                    segment.mm[segment.size : end] = record
                    segment.size = end
                    return True
                self._unmap(segment)  # a record larger than an empty segment's map
            written = _write(segment.fd, record)  # type: ignore[arg-type]
        except OSError as exc:
            self._write_failed(segment, exc)
            return False
        if written != size:
            self._write_failed(
                segment, OSError(errno.ENOSPC, "short write: disk or file size limit")
            )
            return False
        segment.size = end
        return True

    def _refuse(self) -> int:
        if self._closed:
            self._rejection = ("closed", "the spool is closed")
        else:
            self._rejection = (
                "spool_full",
                f"the spool holds {self.disk_bytes()} bytes, at its limit of "
                f"{self._max_bytes} (spool_max_bytes); the message was dropped",
            )
        return 0

    def _rotate(self, need: int = 0) -> _Segment:
        # Under _lock. The old segment stays open for reading until it is acknowledged.
        old = self._live_seg
        segment = self._new_segment(self._own, old.seq + 1, need)
        with contextlib.suppress(OSError):
            # If the cut fails its zero tail stays: readers take it for the end.
            self._unmap(old)
        old.disk = max(old.disk, old.size)
        self._bytes += old.disk
        self._dirty.append(old)
        self._live_seg = segment
        return segment

    def _write_failed(self, segment: _Segment, exc: OSError) -> int:
        # Under _lock. Cut a partial record off so the file stays a sequence of records;
        # if even that fails, a reader skips the damage by its checksum. (A mapped segment
        # is never cut: its map must stay backed by the file.)
        if segment.fd is not None and segment.mm is None:
            try:
                os.ftruncate(segment.fd, segment.size)
            except OSError:
                segment.disk = max(segment.disk, os.fstat(segment.fd).st_size)
        self._rejection = (
            "spool_error",
            f"could not write to the spool in {self._dir!r} ({exc}); the message was dropped",
        )
        return 0

    def rejection(self) -> tuple[str, str]:
        """Why the last refused `put` returned 0: (drop reason, explanation)."""
        return self._rejection

    def take(self, max_count: int, max_bytes: int) -> list[bytes]:
        with self._rlock:
            if self._closed:
                return []
            if self._thread is None:
                self._start_thread()
            if time.monotonic() - self._last_scan >= self._rescan_interval:
                self._scan()
            # A pass returns nothing only when it found the rest of a writer unreadable
            # (that shrinks the depth): try the next writer rather than return [] with a
            # depth, which would stop the consumer.
            for _ in range(len(self._writers) + 1):
                out = self._take_pass(max_count, max_bytes)
                if out or self._depth <= 0:
                    return out
            logger.error("spool depth %d but nothing readable", self._depth)
            return []

    def _take_pass(self, max_count: int, max_bytes: int) -> list[bytes]:
        with self._lock:
            writer = next((w for w in self._writers if self._unread(w)), None)
            if writer is None:
                return []
            idx, off = writer.read_idx, writer.read_off
            segments = writer.segments[idx:]
            # Snapshots: a concurrent put only appends after these ends.
            ends = [s.size for s in segments]
            unreads = [s.unread for s in segments]
        out: list[bytes] = []
        taken: list[tuple[_Writer, _Segment, int]] = []
        got = [0] * len(segments)
        lost = 0
        total = -1
        for i, segment in enumerate(segments):
            off = max(off, segment.start)
            full = False
            try:
                for _, stop, payload, _ in _records(self._read_fd(segment), off, ends[i]):
                    if payload is not None:
                        if out and total + len(payload) + 1 > max_bytes:
                            full = True
                            break
                        total += len(payload) + 1
                        out.append(payload)
                        taken.append((writer, segment, stop))
                        got[i] += 1
                    off = stop  # an unreadable stretch is skipped (counted below)
                    if len(out) >= max_count:
                        full = True
                        break
            except OSError as exc:  # the file vanished or cannot be read: count the rest lost
                logger.error("cannot read spool file %s: %s", segment.path, exc)
                off = ends[i]
            if full:
                break
            # Read to its end: records it held at the snapshot and we did not see are
            # unreadable (adopted files were checked when adopted, so only ours can be).
            lost += max(0, unreads[i] - got[i])
            got[i] = max(got[i], unreads[i])
            if i + 1 < len(segments):
                idx, off = idx + 1, segments[i + 1].start
        with self._lock:
            for segment, count in zip(segments, got, strict=True):
                segment.unread -= count
                writer.unread -= count
                self._depth -= count
            writer.read_idx, writer.read_off = idx, off
        self._taken = taken
        if lost:
            self._queue_report(
                "spool_corrupt",
                DeliveryError(
                    f"{lost} spooled message(s) became unreadable in {self._dir!r}"
                ),
                lost,
                queued=True,
            )
        return out

    @staticmethod
    def _unread(writer: _Writer) -> int:
        # put counts only per segment (one counter less on the caller's path).
        return sum(s.unread for s in writer.segments) if writer.own else writer.unread

    def ack(self, count: int) -> None:
        if count <= 0:
            return
        with self._rlock:
            if not self._taken:
                return
            count = min(count, len(self._taken))
            writer, segment, offset = self._taken[count - 1]
            del self._taken[:count]
            if self._closed:
                return
            self._ack_to(writer, segment, offset)

    def depth(self) -> int:
        return self._depth

    def disk_bytes(self) -> int:
        """Bytes of spool files this queue holds (what `max_bytes` limits)."""
        return self._bytes + self._live_seg.size

    def attach(self, reporter: LossReporter) -> None:
        """Set where losses found by the spool itself go; reports found so far go now."""
        self._reporter = reporter
        self._deliver_reports()

    def close(self) -> None:
        with self._rlock:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                # Taken but unacknowledged messages stay on disk: count them as waiting.
                self._depth += len(self._taken)
            self._stop_thread()
            self._deliver_reports()
            with self._sync_lock:
                for writer in self._writers:
                    finished = writer.own and not self._unread(writer) and not self._taken
                    if finished:
                        # Everything was delivered: leave nothing behind (segments first,
                        # so a crash in between leaves no segment without its lock file).
                        for segment in writer.segments:
                            self._close_fd(segment)
                            with contextlib.suppress(OSError):
                                os.unlink(segment.path)
                        with contextlib.suppress(OSError):
                            os.unlink(writer.ack_path)
                        self._bytes -= sum(s.disk for s in writer.segments[:-1])
                        self._live_seg.size = 0
                        writer.segments = []
                    else:
                        for segment in writer.segments:
                            with contextlib.suppress(OSError):
                                self._unmap(segment)  # a clean close leaves no zero tail
                            if segment.fd is not None and self._sync_interval is not None:
                                with contextlib.suppress(OSError):
                                    os.fsync(segment.fd)
                            self._close_fd(segment)
                    with contextlib.suppress(OSError):
                        os.close(writer.ack_fd)  # releases the flock
                self._taken = []
                with contextlib.suppress(OSError):
                    os.close(self._dir_fd)
        _live.discard(self)

    # -- consumer side helpers ----------------------------------------------------------

    def _read_fd(self, segment: _Segment) -> int:
        if segment.fd is None:
            segment.fd = os.open(segment.path, os.O_RDONLY)
        return segment.fd

    def _ack_to(self, writer: _Writer, segment: _Segment, offset: int) -> None:
        """Everything of `writer` up to `offset` in `segment` is finished. Under _rlock."""
        with self._lock:
            segments = writer.segments
            drop = segments.index(segment)
            live = self._live_seg if writer.own else None
            if (
                segment is live
                and offset >= segment.size
                and segment.size - segment.start >= self._reclaim_bytes
                and not self._closed
            ):
                # All delivered: start a new file so this one can go (else a spool below
                # its segment size would never give space back).
                with contextlib.suppress(OSError):
                    live = self._rotate()
            if offset >= segment.size and segment is not live:
                drop += 1
            gone = segments[:drop]
            del segments[:drop]
            if writer.read_idx < drop:  # it was at the end of a deleted segment
                writer.read_idx = 0
                writer.read_off = segments[0].start if segments else 0
            else:
                writer.read_idx -= drop
        if gone:
            with self._sync_lock:
                for old in gone:
                    self._close_fd(old)
                    with contextlib.suppress(OSError):
                        os.unlink(old.path)
                    with self._lock:
                        self._bytes -= old.disk
            self._dir_dirty = True
        if not writer.own and not writer.segments:
            self._retire(writer)
            return
        head = writer.segments[0] if writer.segments else None
        if head is not None:
            self._write_cursor(writer, head.seq, offset if head is segment else head.start)

    def _write_cursor(self, writer: _Writer, seq: int, offset: int) -> None:
        blob = struct.pack("<QQ", seq, offset)
        try:
            os.pwrite(writer.ack_fd, blob + struct.pack("<I", zlib.crc32(blob)), 0)
        except OSError as exc:
            # Only costs duplicates (same messageIds) after a crash, never a loss.
            logger.warning("could not record spool progress: %s", exc)
            return
        self._acks_dirty.add(writer.ack_fd)

    def _retire(self, writer: _Writer) -> None:
        with contextlib.suppress(OSError):
            os.unlink(writer.ack_path)
        with contextlib.suppress(OSError):
            os.close(writer.ack_fd)
        self._acks_dirty.discard(writer.ack_fd)
        with self._lock:
            self._writers.remove(writer)

    def _close_fd(self, segment: _Segment) -> None:
        mm, segment.mm = segment.mm, None
        if mm is not None:
            mm.close()
        fd, segment.fd = segment.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- adoption ---------------------------------------------------------------------

    def _scan(self) -> None:
        """Adopt the files of writers whose process is gone. Under _rlock."""
        self._last_scan = time.monotonic()
        try:
            names = os.listdir(self._dir)
        except OSError as exc:
            logger.warning("cannot list the spool directory: %s", exc)
            return
        wids = sorted({m.group(1) for m in map(_NAME.match, names) if m} - self._skipped)
        for wid in wids:
            try:
                self._adopt(wid)
            except OSError as exc:
                logger.warning("cannot adopt spool files of %s: %s", wid, exc)
                self._skipped.add(wid)

    def _adopt(self, wid: str) -> None:
        ack_path = os.path.join(self._dir, wid + ".ack")
        fd = os.open(ack_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The file may have been retired (unlinked) between our open and our lock.
            if os.stat(ack_path).st_ino != os.fstat(fd).st_ino:
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)  # its process is alive (or another one adopted it first)
            return
        except OSError:
            os.close(fd)
            raise
        writer = _Writer(wid, ack_path, fd, own=False)
        cursor = self._read_cursor(fd)
        prefix = wid + "."
        seqs = sorted(
            int(m.group(2))
            for m in map(_NAME.match, os.listdir(self._dir))
            if m and m.group(2) and m.string.startswith(prefix)
        )
        recovered = lost = bad_bytes = 0
        for seq in seqs:
            path = os.path.join(self._dir, f"{wid}.{seq:08d}.seg")
            if cursor is not None and seq < cursor[0]:
                with contextlib.suppress(OSError):
                    os.unlink(path)  # finished before the crash; its deletion was cut short
                continue
            segment, got, missing, skipped = self._read_segment(path, seq, cursor)
            if segment is None:
                continue
            recovered += got
            lost += missing
            bad_bytes += skipped
            if got:
                writer.segments.append(segment)
                writer.unread += got
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        if lost or bad_bytes:
            text = (
                f"spool files of {wid}: {lost} message(s) unreadable ({bad_bytes} bytes "
                f"skipped), {recovered} recovered"
            )
            if lost:
                self._queue_report("spool_corrupt", DeliveryError(text), lost, queued=False)
            else:
                logger.warning("%s", text)
        if not writer.segments:
            self._retire_unlisted(writer)
            return
        head = writer.segments[0]
        writer.read_off = head.start
        if cursor is not None and cursor[0] == head.seq:
            writer.read_off = max(head.start, cursor[1])
        if recovered:
            logger.info(
                "adopted %d spooled message(s) left by %s", recovered, wid
            )
        with self._lock:
            self._writers.insert(len(self._writers) - 1, writer)
            self._writers[:-1] = sorted(self._writers[:-1], key=lambda w: w.wid)
            self._bytes += sum(s.disk for s in writer.segments)
            self._depth += writer.unread
        self._skipped.add(wid)

    def _retire_unlisted(self, writer: _Writer) -> None:
        with contextlib.suppress(OSError):
            os.unlink(writer.ack_path)
        with contextlib.suppress(OSError):
            os.close(writer.ack_fd)

    def _read_segment(
        self, path: str, seq: int, cursor: tuple[int, int] | None
    ) -> tuple[_Segment | None, int, int, int]:
        """Scan one adopted segment: (segment, readable, unreadable, bytes skipped)."""
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            header = os.pread(fd, len(FILE_HEADER), 0)
            if header == FILE_HEADER:
                start = len(FILE_HEADER)
            elif header.startswith(_FILE_FAMILY) and len(header) == len(FILE_HEADER):
                # Another format version: a newer client may read it; leave it alone.
                logger.warning("leaving spool file %s (unknown version)", path)
                self._skipped.add(os.path.basename(path).split(".")[0])
                return None, 0, 0, 0
            else:
                start = 0  # a damaged header: recover whatever records follow it
            data_end = max(start, _data_end(fd, size))
            offset = start
            if cursor is not None and cursor[0] == seq:
                offset = max(start, min(cursor[1], size))
            got = missing = skipped = 0
            # Reading stops after the last readable record: an unreadable end (a record
            # torn by the crash, counted here) must not keep the file from being deleted
            # once everything before it is delivered.
            end = offset
            for begin, stop, payload, lost in _records(fd, offset, size, _SCAN_CHUNK):
                if payload is None:
                    # The zero tail of a mapped segment is the end of its data, not damage.
                    missing += lost
                    skipped += max(0, min(stop, data_end) - begin)
                else:
                    got += 1
                    end = stop
        finally:
            os.close(fd)
        if data_end < size:  # give the preallocated tail back
            try:
                os.truncate(path, max(data_end, end))
                size = max(data_end, end)
            except OSError:
                pass
        segment = _Segment(path, seq, end, start, got)
        segment.disk = size
        return segment, got, missing, skipped

    @staticmethod
    def _read_cursor(fd: int) -> tuple[int, int] | None:
        raw = os.pread(fd, _ACK.size, 0)
        if len(raw) != _ACK.size:
            return None
        seq, offset, crc = _ACK.unpack(raw)
        if zlib.crc32(raw[:16]) != crc:
            logger.warning(
                "a spool ack file is damaged; its messages may be sent twice "
                "(same messageIds)"
            )
            return None
        return seq, offset

    # -- reports and the sync thread ----------------------------------------------------

    def _queue_report(self, reason: str, error: DeliveryError, count: int, queued: bool) -> None:
        # Reports are delivered outside the consumer's locks: by attach() or by the sync
        # thread, never from take() (it runs under the consumer's lock).
        self._reports.append((reason, error, count, queued))
        if self._thread is not None:
            self._wake.set()

    def _deliver_reports(self) -> None:
        reporter = self._reporter
        if reporter is None:
            return
        while self._reports:
            reason, error, count, queued = self._reports.pop(0)
            reporter(reason, error, count, queued)

    def _start_thread(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(
                target=self._run, name="segment_client.spool", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # no new threads at interpreter shutdown
                return
            self._thread = thread
            if self._reports:
                self._wake.set()

    def _stop_thread(self) -> None:
        thread = self._thread
        self._stopping = True
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._sync()

    def _run(self) -> None:
        interval = self._sync_interval or DEFAULT_SPOOL_SYNC_INTERVAL
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._deliver_reports()
                self._sync()
            except Exception:  # never let the sync thread die silently
                logger.exception("the spool sync thread failed")

    def _sync(self) -> None:
        """fsync what was written since the last sync. Never called on a caller's thread."""
        if self._sync_interval is None:
            return
        with self._lock:
            dirty, self._dirty = self._dirty, []
            live = self._live_seg
            if self._synced != (live, live.size):
                self._synced = (live, live.size)
                dirty.append(live)
            dir_dirty, self._dir_dirty = self._dir_dirty, False
            acks, self._acks_dirty = self._acks_dirty, set()
        with self._sync_lock:
            for segment in dirty:
                if segment.fd is not None:
                    with contextlib.suppress(OSError):
                        os.fdatasync(segment.fd)
            for fd in acks:
                with contextlib.suppress(OSError):
                    os.fdatasync(fd)
            if dir_dirty:
                with contextlib.suppress(OSError):
                    os.fsync(self._dir_fd)

    def _forget(self) -> None:
        """In a forked child: drop the parent's descriptors without touching its files."""
        self._closed = True
        self._thread = None
        for writer in self._writers:
            for segment in writer.segments:
                self._close_fd(segment)
            with contextlib.suppress(OSError):
                os.close(writer.ack_fd)
        with contextlib.suppress(OSError):
            os.close(self._dir_fd)
        self._writers = []
        _live.discard(self)
