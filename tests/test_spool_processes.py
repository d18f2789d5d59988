"""The spool across processes: SIGKILL, a shared directory, a long outage, a full disk.

Each test runs tests/_support/spool_worker.py in a subprocess and kills or waits for it; no
process outlives its test.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from segment_client import Client
from segment_client._consumer import BACKLOG_BATCH_CAP
from segment_client._spool import SpoolQueue
from segment_client.collector import Collector, Fault
from segment_client.testing import RecordingTransport

WORKER = str(Path(__file__).parent / "_support" / "spool_worker.py")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")


@pytest.fixture(name="spawn")
def _spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def spawn(*args: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, WORKER, *map(str, args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def _delivered(transport: RecordingTransport) -> list[str]:
    return [m["messageId"] for m in transport.messages]


def test_sigkill_at_a_random_point_loses_no_accepted_message(
    spawn: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    total = 20_000
    seed = random.randrange(1 << 30)
    kill_after = random.Random(seed).randrange(500, total)
    spool, delivered_file = tmp_path / "spool", tmp_path / "delivered.txt"
    proc = spawn("track", total, spool, delivered_file)
    assert proc.stdout is not None
    accepted: list[str] = []
    for line in proc.stdout:
        if line == "done\n":
            break
        accepted.append(line.strip())
        if len(accepted) >= kill_after:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    # Ids printed before the kill are still in the pipe; a torn last line is not an id.
    accepted += [line.strip() for line in proc.stdout if line.endswith("\n")]
    accepted = [a for a in accepted if a != "done"]
    assert accepted == [f"m-{i}" for i in range(len(accepted))], f"seed {seed}"

    before_kill = delivered_file.read_text().splitlines() if delivered_file.exists() else []
    transport = RecordingTransport()
    client = Client("k", transport=transport, spool_dir=spool)
    assert client.close_and_flush(30)
    after = _delivered(transport)

    # Every accepted id arrived; nothing else did except possibly the one message whose
    # call returned but whose id had not been printed yet at the kill.
    delivered = set(before_kill) | set(after)
    assert set(accepted) <= delivered, f"seed {seed}"
    assert delivered <= {f"m-{i}" for i in range(len(accepted) + 1)}, f"seed {seed}"
    # The new process sends what is left in the original order; duplicates (sent again
    # after the crash) carry the same messageId and are at most the batch in flight (under
    # a backlog, up to the backlog cap).
    assert after == sorted(after, key=lambda a: int(a[2:])), f"seed {seed}"
    assert len(before_kill) + len(after) - len(delivered) <= BACKLOG_BATCH_CAP, f"seed {seed}"
    assert max(Counter(after).values(), default=1) == 1
    # A record torn by the kill (never accepted) is the only possible damage.
    assert client.stats().dropped.get("spool_corrupt", 0) <= 1, f"seed {seed}"
    assert list(spool.iterdir()) == []


def test_two_processes_share_a_dir_and_the_survivor_adopts_the_dead_ones_file(
    spawn: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    proc = spawn("hold", 300, tmp_path)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    transport = RecordingTransport()
    client = Client(
        "k", transport=transport,
        queue=lambda: SpoolQueue(tmp_path, rescan_interval=0),
    )
    try:
        # The other process is alive: its file is not ours to send.
        assert client.stats().queue_depth == 0
        client.track("u", "E", message_id="mine-1")
        assert client.flush(10)
        assert _delivered(transport) == ["mine-1"]

        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        client.track("u", "E", message_id="mine-2")
        # The next take adopts the dead process's file and sends it first.
        assert transport.wait_for_messages(302, timeout=20)
        assert client.flush(10)
    finally:
        assert client.close_and_flush(10)
    assert _delivered(transport) == ["mine-1"] + [f"m-{i}" for i in range(300)] + ["mine-2"]
    assert list(tmp_path.iterdir()) == []


def test_outage_longer_than_the_retry_budget_keeps_50000_messages_in_bounded_memory(
    spawn: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    total = 50_000
    proc = spawn("outage", total, tmp_path)
    out, _ = proc.communicate(timeout=300)
    result = json.loads(out)
    assert result["closed"] is True
    assert result["failed_during_outage"] == 0
    # At most one batch in flight (under a backlog, up to the backlog cap).
    assert result["depth_during_outage"] + BACKLOG_BATCH_CAP >= total
    assert result["spool_bytes_during_outage"] > total * 1000  # on disk, not in memory
    assert result["attempts"] >= 6
    assert (result["delivered"], result["unique"]) == (total, total)
    assert result["files_left"] == []
    # ~55 MB of messages passed through; the process grew by far less (stated bound:
    # 10 MB over its size after the first call, for 50,000 messages of ~1.1 KB).
    growth_mb = (result["rss_peak_kb"] - result["rss_before_kb"]) / 1024
    assert growth_mb < 10, result


def test_real_collector_refusing_past_the_retry_budget_then_back_gets_all_50000(
    spawn: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    total = 50_000
    with Collector(faults=[Fault(status=503)]) as collector:
        proc = spawn("collector", total, tmp_path, collector.url)
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline() == "refused\n"
        assert collector.stats()["total"] == 0
        collector.set_faults()  # the collector is back
        # An attempt already in flight may still get its 503; were the close to start
        # before that answer, the worker would (rightly) leave the batch in the spool.
        # Once one batch got through, every later attempt does.
        assert collector.wait_for(1, timeout=30)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
        proc.wait(60)
        ids = [m["messageId"] for m in collector.messages()]
    assert result["closed"] is True
    assert result["failed_during_outage"] == 0
    assert result["depth_during_outage"] + BACKLOG_BATCH_CAP >= total
    assert result["stats"]["delivered"] == total
    assert result["stats"]["failed"] == 0
    assert set(ids) == {f"m-{i}" for i in range(total)}
    assert len(ids) == total  # no batch was stored twice
    assert result["files_left"] == []
    growth_mb = (result["rss_peak_kb"] - result["rss_before_kb"]) / 1024
    assert growth_mb < 10, result


def test_a_file_size_limit_costs_rotations_never_messages(
    spawn: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    # Under RLIMIT_FSIZE (ulimit -f) every segment stays below the limit: with nothing
    # delivered during the calls, all 200 messages (10 times the limit) are held.
    limit = 20_000
    proc = spawn("fsize", 200, tmp_path, limit)
    out, _ = proc.communicate(timeout=60)
    result = json.loads(out)
    assert result["raised"] == 0
    assert result["queued"] == result["held"] == 200
    assert result["dropped"] == {}
    assert result["errors"] == []
    assert result["largest_file"] <= limit
    assert result["delivered"] == [f"m-{i:05d}" for i in range(200)]
    assert result["closed"] is True
