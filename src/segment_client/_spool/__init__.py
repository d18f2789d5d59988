"""The on-disk spool: a durable `MessageQueue` behind `Client(spool_dir=...)`.

Split by job: `_records` (the on-disk codec), `_segment` (segment files and their memory
map), `_writer` (this process's own files, the slow path of put, a full disk), `_space`
(how big a segment may be), `_reader` (reading a batch back), `_adopt` (taking over the
files of processes that are gone), `_sync` (the fsync thread), `_files` (opening files
in the directory, and which to trust), `_deadletter` (the dead-letter file), `_command`
(the `segment-client spool` command), `_queue` (`SpoolQueue`, which ties them together).

Layout of a spool directory (shared by every process using it):

    <writer>.ack            the writer's lock (flock held while it lives) and ack cursor
    <writer>.<seq>.seg      segments: a 16-byte file header, then records
    dead-letter.jsonl       messages the collector refused for good, one JSON per line

A writer is one `SpoolQueue` in one process; `<writer>` is `<time_ns hex>-<pid>-<random>`,
so names sort by age. Other names in the directory are left alone. See docs/spool.md for
the durability contract.
"""

from ._queue import DEFAULT_SPOOL_MAX_BYTES, DEFAULT_SPOOL_SYNC_INTERVAL, SpoolQueue

__all__ = ["DEFAULT_SPOOL_MAX_BYTES", "DEFAULT_SPOOL_SYNC_INTERVAL", "SpoolQueue"]
