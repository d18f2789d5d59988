"""Many threads through one client, and a real os.fork()."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from segment_client import Client
from segment_client.testing import RecordingTransport


def test_eight_threads_forty_thousand(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    """8 threads x 5,000 tracks, then flush: exactly 40,000 delivered, ids unique."""
    client = make_client(max_queue_size=100_000)
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        for i in range(5000):
            client.track(f"user-{n}", "Threaded", {"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.flush(30)
    messages = transport.messages
    assert len(messages) == 40_000
    assert len({m["messageId"] for m in messages}) == 40_000
    stats = client.stats()
    assert (stats.queued, stats.delivered, stats.failed, stats.queue_depth) == (
        40_000, 40_000, 0, 0
    )
    assert stats.dropped == {}
    # Per thread, order is preserved.
    for n in range(8):
        seq = [m["properties"]["i"] for m in messages if m["userId"] == f"user-{n}"]
        assert seq == list(range(5000))


class PipeTransport(RecordingTransport):
    """Records like RecordingTransport and also writes each delivered id to a file,
    so a forked child's deliveries are visible to the parent."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def send(self, batch, *, retry_count=0, timeout=None):  # type: ignore[no-untyped-def]
        super().send(batch, retry_count=retry_count)
        with open(self.path, "a") as out:
            for data in batch:
                out.write(f"{os.getpid()} {json.loads(data)['messageId']}\n")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_starts_fresh(tmp_path: Path) -> None:
    """The parent's queued messages are sent by the parent only; the child's by the child."""
    log = str(tmp_path / "delivered.txt")
    transport = PipeTransport(log)
    client = Client("k", transport=transport, flush_interval=3600)
    parent_ids = {client.track("parent", f"P{i}") for i in range(20)}
    assert client.stats().queue_depth + client.stats().in_flight >= 1

    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            stats = client.stats()
            ids = {client.track("child", f"C{i}") for i in range(30)}
            ok = client.close_and_flush(10)
            with open(log + ".child", "w") as out:
                out.write(json.dumps({"ids": sorted(ids), "ok": ok, "before": stats.queued}))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.close_and_flush(10)

    child = json.loads(Path(log + ".child").read_text())
    assert child["ok"] is True
    assert child["before"] == 0  # the child did not inherit the parent's queue
    lines = [line.split() for line in Path(log).read_text().splitlines()]
    by_pid: dict[str, list[str]] = {}
    for who, mid in lines:
        by_pid.setdefault(who, []).append(mid)
    assert sorted(by_pid[str(os.getpid())]) == sorted(parent_ids)
    assert sorted(by_pid[str(pid)]) == child["ids"]
    assert len(lines) == 50  # nothing sent twice


def test_thread_is_named_daemon_and_lazy(make_client: Callable[..., Client]) -> None:
    client = make_client()
    assert client._consumer.thread is None  # not started before first use
    client.track("u", "E")
    thread = client._consumer.thread
    assert thread is not None
    assert thread.name == "segment_client.consumer" and thread.daemon
    assert client.close_and_flush(5)
    assert not thread.is_alive()


def test_atexit_close_delivers(tmp_path: Path) -> None:
    """A script that never closes its client still delivers at interpreter exit."""
    import subprocess

    log = str(tmp_path / "atexit.txt")
    script = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from test_threads_and_fork import PipeTransport
from segment_client import Client
c = Client("k", transport=PipeTransport({log!r}), flush_interval=3600)
for i in range(7):
    c.track("u", "E")
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert len(Path(log).read_text().splitlines()) == 7


def test_dropped_client_drains_and_its_thread_exits(transport: RecordingTransport) -> None:
    """A client garbage-collected without close still delivers, and its thread ends."""
    import gc

    client = Client("k", transport=transport, flush_interval=3600)
    for _ in range(3):
        client.track("u", "E")
    thread = client._consumer.thread
    assert thread is not None
    del client
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()
    assert len(transport.messages) == 3
