"""`SpoolQueue`: the durable `MessageQueue` behind `Client(spool_dir=...)`.

Every accepted message is copied into this process's own segment file before the call
returns: into a shared memory map of a preallocated segment (the page cache: it survives
the death of the process, and costs no system call), or, where the space cannot be
preallocated, with one `os.write`; never an fsync on the caller's thread. The consumer
reads batches back (`_reader`), records what it finished in the ack file, and deletes
fully finished segments. Files of processes that are gone are adopted (`_adopt`) and
sent first. A background thread (`_sync`) fsyncs. See docs/spool.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
import zlib

from segment_client._exceptions import ConfigurationError, DeliveryError
from segment_client._queue import QueueLoss, QueuePolicy

from . import _records as rec
from ._adopt import adopt, release, writer_ids
from ._deadletter import DeadLetters
from ._files import open_at, open_directory, unlink_at
from ._reader import read_batch
from ._segment import Segment, Writer, close_fd, unmap
from ._space import FreeSpace, disk_free
from ._sync import SyncThread
from ._writer import WriterSide

__all__ = ["DEFAULT_SPOOL_MAX_BYTES", "DEFAULT_SPOOL_SYNC_INTERVAL", "SpoolQueue"]

logger = logging.getLogger("segment_client")

DEFAULT_SPOOL_MAX_BYTES = 1 << 30
DEFAULT_SPOOL_SYNC_INTERVAL = 1.0
DEFAULT_SEGMENT_BYTES = 16 << 20
DEFAULT_RESCAN_INTERVAL = 10.0

_MAGIC = rec.MAGIC
if rec.HEADER_SIZE != 14:  # pragma: no cover - put() spells it out
    raise ImportError("SpoolQueue.put assumes 14-byte record headers")
_PACK = rec.HEADER.pack
_PACK_INTO = rec.HEADER.pack_into
_crc32 = zlib.crc32

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


class SpoolQueue(WriterSide):
    """A durable `MessageQueue` in `directory`. Thread-safe.

    `put` appends to this process's spool file and never blocks on the disk beyond one
    `write` (no fsync); it returns 0 (a drop, reported by the client) when the spool holds
    `max_bytes` or the write fails. `take`/`ack` run on the consumer thread. A small
    background thread fsyncs every `sync_interval` seconds (None: leave it to the OS).
    `close(timeout)` returns within `timeout`.

    Args:
        directory: the spool directory (created if missing); may be shared by processes.
        max_bytes: bytes of spool files this queue may hold (its own and adopted ones).
        sync_interval: seconds between fsyncs of data written since the last one.
        segment_bytes: size at which the spool file is rotated (finished ones are deleted).
        rescan_interval: seconds between looks for files of processes that are gone.
        shared_group: accept a directory writable by its group (several users of one
            group sharing a spool); files are then created 0660. Without it such a
            directory is refused, like one writable by others or owned by another user.
        free_space: `free_space(dir_fd)`, the bytes free on the directory's disk (for
            tests; default `fstatvfs`).
    """

    #: Messages survive the process: keep retrying past the budget, keep them at close.
    policy = QueuePolicy(keep_retrying=True, keep_on_close=True)

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        sync_interval: float | None = DEFAULT_SPOOL_SYNC_INTERVAL,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        rescan_interval: float = DEFAULT_RESCAN_INTERVAL,
        shared_group: bool = False,
        free_space: FreeSpace = disk_free,
    ) -> None:
        self._dir = os.fspath(directory)
        self._max_bytes = max_bytes
        self._sync_interval = sync_interval
        self._segment_bytes = max(segment_bytes, 4096)
        self._free_space = free_space
        self._rescan_interval = rescan_interval
        self._pid = os.getpid()
        self._lock = threading.Lock()  # the caller side: put and the counters
        self._rlock = threading.RLock()  # the consumer side: take, ack, adoption, close
        self._sync_lock = threading.Lock()  # an fsync and the closing of a segment's fd
        self._loss_lock = threading.Lock()
        self._closed = False
        self._depth = 0
        self._bytes = 0  # bytes of our files but the live segment's (put adds that)
        self._room = max_bytes  # max_bytes - _bytes (-1 once closed): put's one check
        self._rejection = ("spool_full", "the spool is full; the message was dropped")
        self._taken: list[tuple[Writer, Segment, int, int]] = []
        self._writers: list[Writer] = []  # adopted ones (oldest first), then our own
        self._skipped: set[str] = set()  # writers whose files this process leaves alone
        self._losses: list[QueueLoss] = []
        self._dirty: list[Segment] = []  # rotated segments not yet fsynced
        self._synced: tuple[Segment | None, int] = (None, 0)  # the live segment, synced to
        self._dir_dirty = False
        self._acks_dirty: set[int] = set()
        self._thread = SyncThread(sync_interval or DEFAULT_SPOOL_SYNC_INTERVAL, self._tick)
        self._thread_started = False  # a plain flag: put reads it on every call
        self._last_scan = 0.0
        self._index = 0  # the writer-wide index of our next record
        self._counted = 0  # _index when the live segment's unread count was last settled
        self._space_failed_at = 0.0  # when a new file last failed for lack of space
        self._space_error: OSError | None = None
        try:
            self._dir_fd, self._trust = open_directory(self._dir, shared_group=shared_group)
        except PermissionError as exc:
            raise ConfigurationError(
                f"spool_dir {self._dir!r} refused: {exc.strerror}"
            ) from exc
        except OSError as exc:
            raise ConfigurationError(
                f"spool_dir must be a writable directory, got {self._dir!r}: {exc}"
            ) from exc
        try:
            self._own = self._create_writer()
        except OSError as exc:
            os.close(self._dir_fd)
            raise ConfigurationError(
                f"spool_dir must be a writable directory, got {self._dir!r}: {exc}"
            ) from exc
        self._dead = DeadLetters(self._dir_fd, self._trust)
        with self._rlock:
            self._scan()
        _live.add(self)

    # -- the MessageQueue protocol: caller side -----------------------------------------

    def put(self, data: bytes) -> int:
        # The caller's cost: a copy into the mapped segment (the page cache, no system
        # call) and a few counters; kept lean on purpose.
        # (Literals instead of module constants: 14 is HEADER_SIZE, checked at import.)
        length = len(data)
        check = _crc32(data)
        with self._lock:
            segment = self._live_seg
            pos = segment.size
            end = pos + 14 + length
            if end > self._room:  # over max_bytes; -1 once closed
                return self._refuse()
            index = self._index
            check ^= index
            mm = segment.mm
            if mm is not None and end <= segment.limit:
                # Header first, then the payload: a copy torn by a kill fails the check.
                _PACK_INTO(mm, pos, _MAGIC, length, check, index)
                mm[pos + 14 : end] = data
                segment.size = end
            elif not self._put_slow(segment, _PACK(_MAGIC, length, check, index) + data):
                return 0
            else:
                segment = self._live_seg
            # (The live segment's unread count follows from _index: see _settle.)
            self._index = (index + 1) & 0xFFFFFFFF
            self._depth = depth = self._depth + 1
        if not self._thread_started:
            self._start_thread()
        return depth

    def rejection(self) -> tuple[str, str]:
        """Why the last refused `put` returned 0: (drop reason, explanation)."""
        return self._rejection

    def depth(self) -> int:
        return self._depth

    def losses(self) -> list[QueueLoss]:
        """Messages found unreadable since the last call (drained by the consumer)."""
        with self._loss_lock:
            found, self._losses = self._losses, []
        return found

    # -- the MessageQueue protocol: consumer side ---------------------------------------

    def take(self, max_count: int, max_bytes: int) -> list[bytes]:
        with self._rlock:
            if self._closed:
                return []
            if not self._thread_started:
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
            self._settle()
            writer = next((w for w in self._writers if self._unread(w)), None)
            if writer is None:
                return []
            idx = writer.read_idx
            segments = writer.segments[idx:]
            # Snapshots: a concurrent put only appends after these ends.
            ends = [s.size for s in segments]
            unreads = [s.unread for s in segments]
        batch = read_batch(
            writer, segments, ends, unreads, idx, writer.read_off, max_count, max_bytes,
            self._read_fd,
        )
        with self._lock:
            for segment, count in zip(segments, batch.got, strict=True):
                segment.unread -= count
                writer.unread -= count
                self._depth -= count
            writer.read_idx, writer.read_off = batch.idx, batch.off
        self._taken = batch.stops
        if batch.lost:
            text = f"{batch.lost} spooled message(s) became unreadable in {self._dir!r}"
            self._report_loss(QueueLoss("spool_corrupt", DeliveryError(text), batch.lost, True))
        return batch.payloads

    @staticmethod
    def _unread(writer: Writer) -> int:
        # put counts only per segment (one counter less on the caller's path).
        return sum(s.unread for s in writer.segments) if writer.own else writer.unread

    def ack(self, count: int) -> None:
        if count <= 0:
            return
        with self._rlock:
            if not self._taken:
                return
            count = min(count, len(self._taken))
            writer, segment, offset, index = self._taken[count - 1]
            del self._taken[:count]
            if self._closed:
                return
            self._ack_to(writer, segment, offset, index)

    def _read_fd(self, segment: Segment) -> int:
        if segment.fd is None:
            segment.fd = open_at(self._dir_fd, segment.name, os.O_RDONLY, self._trust)
        return segment.fd

    def _ack_to(self, writer: Writer, segment: Segment, offset: int, index: int) -> None:
        """Everything of `writer` up to `offset` in `segment` (the record `index` starts
        there) is finished. Under _rlock."""
        with self._lock:
            segments = writer.segments
            drop = segments.index(segment)
            live = self._live_seg if writer.own else None
            if (
                segment is live
                and offset >= segment.size
                and segment.size - segment.start >= max(1, segment.room // 4)
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
                    close_fd(old)
                    unlink_at(self._dir_fd, old.name)
                    with self._lock:
                        self._hold(-old.disk)
                        self._space_error = None  # room came back: try a new file at once
            self._dir_dirty = True
        if not writer.own and not writer.segments:
            self._retire(writer)
            return
        head = writer.segments[0] if writer.segments else None
        if head is not None:
            if head is segment:
                self._write_cursor(writer, head.seq, offset, index)
            else:
                self._write_cursor(writer, head.seq, head.start, head.first)

    def _retire(self, writer: Writer) -> None:
        release(self._dir_fd, writer, unlink=True)
        self._acks_dirty.discard(writer.ack_fd)
        with self._lock:
            self._writers.remove(writer)

    # -- adoption -----------------------------------------------------------------------

    def _scan(self) -> None:
        """Adopt the files of writers whose process is gone. Under _rlock."""
        self._last_scan = time.monotonic()
        try:
            names = os.listdir(self._dir_fd)
        except OSError as exc:
            logger.warning("cannot list the spool directory: %s", exc)
            return
        for wid in sorted(writer_ids(names) - self._skipped):
            try:
                found = adopt(self._dir_fd, wid, self._trust)
            except OSError as exc:
                logger.warning("cannot adopt spool files of %s: %s", wid, exc)
                self._skipped.add(wid)
                continue
            if found is None:
                continue  # its process is alive
            self._skipped.add(wid)
            if found.lost or found.bad_bytes:
                text = (
                    f"spool files of {wid}: {found.lost} message(s) unreadable "
                    f"({found.bad_bytes} bytes skipped), {found.recovered} recovered"
                )
                if found.lost:
                    error = DeliveryError(text)
                    self._report_loss(QueueLoss("spool_corrupt", error, found.lost, False))
                else:
                    logger.warning("%s", text)
            writer = found.writer
            if writer is None:
                continue
            if found.recovered:
                logger.info(
                    "adopted %d spooled message(s) left by %s",
                    found.recovered, wid,
                )
            with self._lock:
                self._writers.insert(len(self._writers) - 1, writer)
                self._writers[:-1] = sorted(self._writers[:-1], key=lambda w: w.wid)
                self._hold(sum(s.disk for s in writer.segments))
                self._depth += writer.unread

    # -- dead letters, losses, syncing, close -------------------------------------------

    def dead_letter(self, data: bytes, error: DeliveryError) -> None:
        """Keep a message found undeliverable in the directory's dead-letter file (the
        consumer already reported it). One locked append; never raises."""
        if not self._closed:
            self._dead.append(data, error)

    def _report_loss(self, loss: QueueLoss) -> None:
        with self._loss_lock:
            self._losses.append(loss)

    def _start_thread(self) -> None:
        self._thread.start()
        self._thread_started = self._thread.started

    def _tick(self) -> None:
        self._sync(None)

    def _sync(self, deadline: float | None) -> None:
        """fsync what was written since the last sync, stopping at `deadline` (each fsync
        is checked before it starts). Never called on a caller's thread."""
        if self._sync_interval is None:
            return
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._sync_lock.acquire(timeout=wait):
            return
        try:
            with self._lock:
                dirty, self._dirty = self._dirty, []
                live = self._live_seg
                if self._synced != (live, live.size):
                    self._synced = (live, live.size)
                    dirty.append(live)
                dir_dirty, self._dir_dirty = self._dir_dirty, False
                acks, self._acks_dirty = self._acks_dirty, set()
            fds = [s.fd for s in dirty if s.fd is not None] + sorted(acks)
            for fd in fds:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                with contextlib.suppress(OSError):
                    os.fdatasync(fd)
            if dir_dirty and (deadline is None or time.monotonic() < deadline):
                with contextlib.suppress(OSError):
                    os.fsync(self._dir_fd)
        finally:
            self._sync_lock.release()

    def close(self, timeout: float | None = None) -> None:
        """Release files and locks; fsync what is left if time allows. Returns within
        `timeout` (None: no limit); what is not finished stays in the spool."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._rlock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            # The consumer is still in take/ack (a slow disk): stop here; the files stay
            # as they are and close with the process.
            with self._lock:
                self._closed = True
                self._room = -1
            self._thread.stop(0)
            return
        try:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                self._room = -1
                # Taken but unacknowledged messages stay on disk: count them as waiting.
                self._depth += len(self._taken)
            self._thread.stop(_left(deadline))
            self._sync(deadline)
            self._close_files(deadline)
        finally:
            self._rlock.release()
        _live.discard(self)

    def _close_files(self, deadline: float | None) -> None:
        got_lock = self._sync_lock.acquire(timeout=_wait(deadline))
        with self._lock:
            self._settle()
        try:
            for writer in self._writers:
                finished = writer.own and not self._unread(writer) and not self._taken
                if finished:
                    # Everything was delivered: leave nothing behind (segments first, so
                    # a crash in between leaves no segment without its lock file).
                    for segment in writer.segments:
                        close_fd(segment)
                        unlink_at(self._dir_fd, segment.name)
                    unlink_at(self._dir_fd, writer.ack_name)
                    live = self._live_seg
                    self._hold(-sum(s.disk for s in writer.segments if s is not live))
                    self._live_seg.size = self._live_seg.start = 0
                    writer.segments = []
                else:
                    for segment in writer.segments:
                        with contextlib.suppress(OSError):
                            unmap(segment)  # a clean close leaves no zero tail
                        if (
                            segment.fd is not None
                            and self._sync_interval is not None
                            and (deadline is None or time.monotonic() < deadline)
                        ):
                            with contextlib.suppress(OSError):
                                os.fdatasync(segment.fd)
                        close_fd(segment)
                with contextlib.suppress(OSError):
                    os.close(writer.ack_fd)  # releases the flock
            self._taken = []
            with contextlib.suppress(OSError):
                os.close(self._dir_fd)
        finally:
            if got_lock:
                self._sync_lock.release()

    def _forget(self) -> None:
        """In a forked child: drop the parent's descriptors without touching its files."""
        self._closed = True
        self._room = -1
        self._thread.forget()
        for writer in self._writers:
            for segment in writer.segments:
                close_fd(segment)
            with contextlib.suppress(OSError):
                os.close(writer.ack_fd)
        with contextlib.suppress(OSError):
            os.close(self._dir_fd)
        self._writers = []
        _live.discard(self)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _wait(deadline: float | None) -> float:
    return -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
