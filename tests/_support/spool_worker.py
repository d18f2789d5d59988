"""A separate process for the spool's crash tests (run by tests/test_spool_processes.py).

    python spool_worker.py track N SPOOL DELIVERED  # track N, print each accepted id
    python spool_worker.py hold N SPOOL             # track N that cannot be sent, wait
    python spool_worker.py outage N SPOOL           # N during an outage; print JSON
    python spool_worker.py collector N SPOOL URL    # the same against a real collector
    python spool_worker.py fsize N SPOOL LIMIT      # N under RLIMIT_FSIZE; print JSON
    python spool_worker.py flood N SPOOL URL [LIMIT]  # N to a live collector, flushing
                                    # every 200 (under RLIMIT_FSIZE LIMIT); print JSON
    python spool_worker.py fill N SPOOL             # track N, collector down, until the
                                                    # disk is full; close; print JSON

Accepted ids are printed to stdout, line-buffered, after each call returns, so the test
knows exactly what was accepted when it kills the process.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from segment_client import Client, DeliveryError, TransportError
from segment_client._spool import SpoolQueue
from segment_client.testing import RecordingTransport

_ID = b'"messageId":"m-'


def _index(data: bytes) -> int:
    start = data.index(_ID) + len(_ID)
    return int(data[start : data.index(b'"', start)])


class FileTransport:
    """Delivers by appending the batch's ids to a file: one write per batch, before
    returning, so what was delivered is known even after a SIGKILL."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def send(
        self, batch: Sequence[bytes], *, retry_count: int = 0, timeout: float | None = None
    ) -> None:
        os.write(self._fd, b"".join(b"m-%d\n" % _index(data) for data in batch))

    def close(self) -> None:
        os.close(self._fd)


class SwitchTransport:
    """Refuses everything until switched on; then marks ids in a bitmap (little memory)."""

    def __init__(self, count: int) -> None:
        self.on = threading.Event()
        self.seen = bytearray(count)
        self.delivered = 0
        self.attempts = 0
        self._cond = threading.Condition()

    def send(
        self, batch: Sequence[bytes], *, retry_count: int = 0, timeout: float | None = None
    ) -> None:
        with self._cond:
            self.attempts += 1
            self._cond.notify_all()
        if not self.on.is_set():
            raise TransportError("connection refused")
        for data in batch:
            self.seen[_index(data)] = 1
        self.delivered += len(batch)

    def wait_attempts(self, count: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.attempts >= count, 60)

    def close(self) -> None:
        pass


def _track(client: Client, i: int, props: dict[str, Any] | None = None) -> None:
    client.track("user-1", "Event", props or {"i": i}, message_id=f"m-{i}")


def _track_fixed(client: Client, i: int) -> None:
    # Every message the same size, so how many fit under a byte limit is known.
    client.track("user-1", "Event", {"i": f"{i:05d}"}, message_id=f"m-{i:05d}")


def track(count: int, spool: str, delivered: str) -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    # Small segments, so files are rotated and deleted while the test kills us.
    client = Client(
        "k", transport=FileTransport(delivered), flush_at=50, flush_interval=0.01,
        queue=lambda: SpoolQueue(spool, segment_bytes=64 * 1024),
    )
    for i in range(count):
        _track(client, i)
        print(f"m-{i}")
    print("done")
    sys.stdin.read()  # until killed


def hold(count: int, spool: str) -> None:
    client = Client(
        "k", transport=RecordingTransport(fail_always=503), spool_dir=spool,
        max_retries=0, retry_max_delay=1.0,
    )
    for i in range(count):
        _track(client, i)
    print("ready", flush=True)
    sys.stdin.read()  # until killed


def outage(count: int, spool: str) -> None:
    transport = SwitchTransport(count)
    max_retries = 2
    client = Client(
        "k", transport=transport, spool_dir=spool, max_retries=max_retries,
        retry_base_delay=0.001, retry_max_delay=0.01,
    )
    pad = "x" * 1000
    _track(client, 0, {"pad": pad})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(1, count):
        _track(client, i, {"i": i, "pad": pad})
    # Refused for longer than the whole retry budget of a batch.
    transport.wait_attempts(max_retries + 4)
    stats = client.stats()
    transport.on.set()
    closed = client.close_and_flush(120)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "closed": closed, "delivered": transport.delivered, "unique": sum(transport.seen),
        "failed_during_outage": stats.failed, "depth_during_outage": stats.queue_depth,
        "spool_bytes_during_outage": stats.spool_bytes, "attempts": transport.attempts,
        "rss_before_kb": before, "rss_peak_kb": after, "files_left": os.listdir(spool),
    }))


def collector(count: int, spool: str, url: str) -> None:
    """Track `count` while the collector at `url` refuses everything, past the retry
    budget; print "refused"; on a line from stdin (the collector is back) close and
    print JSON."""
    max_retries = 2
    client = Client(
        "k", host=url, spool_dir=spool, max_retries=max_retries,
        retry_base_delay=0.001, retry_max_delay=0.01, gzip=False,
    )
    pad = "x" * 1000
    _track(client, 0, {"pad": pad})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(1, count):
        _track(client, i, {"i": i, "pad": pad})
    # Wait until the first batch was retried past its whole budget (polling the
    # counters; nothing else to wait on from outside the consumer).
    beyond = threading.Event()
    while client.stats().retried < (max_retries + 3) * 100:
        beyond.wait(0.01)
    stats = client.stats()
    print("refused", flush=True)
    sys.stdin.readline()
    closed = client.close_and_flush(120)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "closed": closed, "stats": client.stats().as_dict(),
        "failed_during_outage": stats.failed, "depth_during_outage": stats.queue_depth,
        "spool_bytes_during_outage": stats.spool_bytes,
        "rss_before_kb": before, "rss_peak_kb": after, "files_left": os.listdir(spool),
    }), flush=True)


def fsize(count: int, spool: str, limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    errors: list[str] = []

    def on_error(error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        errors.append(type(error).__name__)

    transport = RecordingTransport()
    # The limit is in place before the spool file exists. Nothing is delivered during the
    # calls (flush_at above the count, flush_interval=60), so every message must be held
    # under the limit.
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    client = Client(
        "k", transport=transport, spool_dir=spool, on_error=on_error, flush_interval=60,
        flush_at=count + 1,
    )
    _track_fixed(client, 0)
    record = client.stats().spool_bytes - 16
    raised = 0
    for i in range(1, count):
        try:
            _track_fixed(client, i)
        except Exception:
            raised += 1
    stats = client.stats()
    largest = max(os.stat(os.path.join(spool, name)).st_size for name in os.listdir(spool))
    closed = client.close_and_flush(30)
    print(json.dumps({
        "record": record, "queued": stats.queued, "dropped": stats.dropped, "raised": raised,
        "errors": errors, "closed": closed, "largest_file": largest,
        "held": stats.queue_depth,
        "delivered": [m["messageId"] for m in transport.messages],
    }))


def flood(count: int, spool: str, url: str, limit: int | None) -> None:
    """Track `count` to the collector at `url` (up throughout), flushing every 200 so
    that it keeps up, on a small file system or under RLIMIT_FSIZE `limit`; print the
    counts as JSON."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    if limit is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    reported: list[int] = []

    def on_error(error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        reported.append(len(messages))

    client = Client("k", host=url, spool_dir=spool, on_error=on_error, gzip=False)
    largest = 0
    for i in range(count):
        _track(client, i, {"i": i, "pad": "x" * 200})
        if i % 200 == 199:
            client.flush(30)
            for name in os.listdir(spool):
                with contextlib.suppress(FileNotFoundError):  # deleted once delivered
                    largest = max(largest, os.stat(os.path.join(spool, name)).st_size)
    closed = client.close_and_flush(120)
    print(json.dumps({
        "stats": client.stats().as_dict(), "reported": sum(reported), "closed": closed,
        "largest_file": largest, "files_left": os.listdir(spool),
    }), flush=True)


def fill(count: int, spool: str) -> None:
    """Track up to `count` while the collector is down, until the disk is full; close
    (the messages stay in the spool); print how many were accepted and the ids."""
    client = Client(
        "k", transport=RecordingTransport(fail_always=503), spool_dir=spool,
        max_retries=0, retry_max_delay=1.0,
    )
    accepted = []
    for i in range(count):
        _track(client, i, {"i": i, "pad": "x" * 200})
        if client.stats().queued == len(accepted) + 1:
            accepted.append(f"m-{i}")
    stats = client.stats()
    closed = client.close_and_flush(0.5)
    print(json.dumps({
        "accepted": accepted, "dropped": stats.dropped, "closed": closed,
        "left": client.stats().queue_depth,
    }), flush=True)


def main() -> None:
    mode, count, spool, *rest = sys.argv[1:]
    if mode == "track":
        track(int(count), spool, rest[0])
    elif mode == "hold":
        hold(int(count), spool)
    elif mode == "outage":
        outage(int(count), spool)
    elif mode == "collector":
        collector(int(count), spool, rest[0])
    elif mode == "fill":
        fill(int(count), spool)
    elif mode == "flood":
        flood(int(count), spool, rest[0], int(rest[1]) if len(rest) > 1 else None)
    elif mode == "fsize":
        fsize(int(count), spool, int(rest[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
