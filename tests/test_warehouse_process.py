"""The warehouse loader process: loads a file store, restarts after a crash, never
outlives the collector."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import segment_client
from segment_client.collector import Collector, Destinations
from segment_client.collector._warehouse import WarehouseProcess
from tests.test_warehouse import (  # noqa: F401 - fixtures used by name
    TYPE_TABLES,
    demo_calls,
    postgres,
    send,
    warehouse_url,
)

SUPPORT = Path(__file__).parent / "_support"
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(segment_client.__file__).resolve().parents[1]),
     os.environ.get("PYTHONPATH", "")])}


def tracks(count: int, start: int = 0) -> list[tuple[str, dict[str, Any]]]:
    return [("track", {"user_id": "u", "event": "Tick", "message_id": f"m{start + i}",
                       "properties": {"n": start + i}}) for i in range(count)]


def test_the_loader_process_loads_a_file_store(
    warehouse_url: str, tmp_path: Path,  # noqa: F811 - the fixture imported above
) -> None:
    with Collector(db=str(tmp_path / "store.sqlite3")) as collector, Destinations(
        collector, warehouse=warehouse_url
    ) as destinations:
        loader = destinations.loader
        assert isinstance(loader, WarehouseProcess)
        assert loader.pid is not None and loader.pid != os.getpid()
        send(collector, demo_calls())
        assert destinations.wait()
        # Niced (once it opened the warehouse): ingest keeps the CPU first.
        assert os.getpriority(os.PRIO_PROCESS, loader.pid) == min(
            os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)
        status = destinations.warehouse_status(schema=True)
        stats = collector.stats()
        rows = {t["table"]: t["rows"] for t in status["schema"]}
        for kind, table in TYPE_TABLES.items():
            assert rows.get(table, 0) == stats["by_type"].get(kind, 0), table
        assert rows["users"] == 8
        assert (status["lag_rows"], status["error"], status["loaded_id"]) == (
            0, None, stats["total"])
        assert status["process"] == {"pid": loader.pid, "restarts": 0, "last_exit": None}
        collector.clear()  # a clear is applied by the process too
        assert destinations.wait()
        assert destinations.warehouse_status()["lag_rows"] == 0


def test_a_crashed_loader_process_is_reported_and_restarted(tmp_path: Path) -> None:
    store = str(tmp_path / "store.sqlite3")
    with Collector(db=store) as collector:
        loader = WarehouseProcess(f"sqlite:{tmp_path / 'wh.sqlite3'}", store, retry_wait=0.05)
        remove = collector.add_listener(loader.on_rows, loader.on_clear)
        loader.start()
        try:
            send(collector, tracks(5))
            assert loader.wait_loaded(5)
            first = loader.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            # Stored after the kill: only a new loader process can load these.
            send(collector, tracks(3, start=5))
            assert loader.wait_loaded(8)
            status = loader.status()
            assert status["process"]["restarts"] == 1
            assert status["process"]["last_exit"] == "killed by SIGKILL"
            assert status["process"]["pid"] not in (None, first)
            assert (status["error"], status["lag_rows"]) == (None, 0)
            assert loader.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM tick") == [(8, 8)]
        finally:
            remove()
            loader.close()


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on a pidfd (Linux)")
def test_the_loader_process_dies_with_the_collector(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(SUPPORT / "warehouse_collector.py"),
         str(tmp_path / "store.sqlite3"), f"sqlite:{tmp_path / 'wh.sqlite3'}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CHILD_ENV,
    )
    try:
        assert process.stdout is not None
        words = process.stdout.readline().split()
        assert words[:1] == [b"PORT"] and words[2] == b"LOADER", words
        loader_pid = int(words[3])
        # A pidfd becomes readable when its process ends: a bounded wait on a
        # grandchild, without polling (opened while it runs: no pid reuse).
        pidfd = os.pidfd_open(loader_pid)
        try:
            assert _alive(loader_pid)
            assert select.select([pidfd], [], [], 0)[0] == []
            process.kill()  # SIGKILL: no cleanup code runs in the collector
            assert process.wait(10) == -signal.SIGKILL
            assert select.select([pidfd], [], [], 30)[0] == [pidfd]
        finally:
            os.close(pidfd)
        assert not _alive(loader_pid)
        # The loader inherited the collector's stderr, now closed by every holder.
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for whoever adopted it)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            state = file.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("bad", ["mysql://x", "sqlite:"])
def test_a_bad_url_fails_before_any_process_starts(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="warehouse URL"):
        WarehouseProcess(bad, str(tmp_path / "store.sqlite3"))
