"""Reading the next batch from one writer's segments (the consumer side of the spool).

Thread-safety: reads with `os.pread` only, from snapshots taken under the spool's lock; a
concurrent `put` only appends past the snapshot's ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from . import _records as rec
from ._segment import Segment, Writer

__all__ = ["Batch", "read_batch"]

logger = logging.getLogger("segment_client")


@dataclass
class Batch:
    """What one pass read: the payloads, where each ends, and the new read position."""

    payloads: list[bytes] = field(default_factory=list)
    # (writer, segment, end offset, index of the next record) per payload
    stops: list[tuple[Writer, Segment, int, int]] = field(default_factory=list)
    got: list[int] = field(default_factory=list)  # records accounted per segment
    lost: int = 0  # records found unreadable
    idx: int = 0
    off: int = 0


def read_batch(
    writer: Writer,
    segments: list[Segment],
    ends: list[int],
    unreads: list[int],
    idx: int,
    off: int,
    max_count: int,
    max_bytes: int,
    read_fd: Callable[[Segment], int],
) -> Batch:
    """Read from `segments` (`writer`'s, from index `idx`, offset `off`) up to the
    limits. `ends`/`unreads` are snapshots of each segment's size and unread count.

    A segment read to its end accounts for all its unread records: those not seen were
    unreadable and count in `lost`."""
    batch = Batch(got=[0] * len(segments), idx=idx, off=off)
    out, stops, got = batch.payloads, batch.stops, batch.got
    total = -1
    for i, segment in enumerate(segments):
        off = max(off, segment.start)
        full = False
        try:
            fd = read_fd(segment)
            for _, stop, payload, index in rec.records(
                fd, off, ends[i], version=segment.version
            ):
                if payload is not None:
                    if out and total + len(payload) + 1 > max_bytes:
                        full = True
                        break
                    total += len(payload) + 1
                    out.append(payload)
                    stops.append((writer, segment, stop, index + 1))
                    got[i] += 1
                off = stop  # an unreadable stretch is skipped (counted below)
                if len(out) >= max_count:
                    full = True
                    break
        except OSError as exc:  # the file vanished or cannot be read: count the rest lost
            logger.error("cannot read spool file %s: %s", segment.name, exc)
            off = ends[i]
        if full:
            break
        # Read to its end: records it held at the snapshot and we did not see are
        # unreadable (adopted files were checked when adopted, so only ours can be).
        batch.lost += max(0, unreads[i] - got[i])
        got[i] = max(got[i], unreads[i])
        if i + 1 < len(segments):
            idx, off = idx + 1, segments[i + 1].start
    batch.idx, batch.off = idx, off
    return batch
