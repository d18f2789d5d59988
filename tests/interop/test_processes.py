"""Our Client across processes against the real collector: a fork while a batch is in
flight, a child leaving with os._exit, multiprocessing with "fork", "spawn" and
"forkserver", and a SIGKILL with the in-memory queue and with the spool."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segment_client import Client
from segment_client.collector import Collector
from tests._support import interop_workers
from tests._support.cli_collector import CHILD_ENV

KILL_CHILD = Path(__file__).resolve().parents[1] / "_support" / "kill_child.py"

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Forking a process that runs threads is what these tests are about.
    pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning"),
]


@pytest.fixture(name="collector")
def _collector() -> Iterator[Collector]:
    with Collector() as collector:
        yield collector


def by_user(collector: Collector) -> Counter[str]:
    return Counter(m["userId"] for m in collector.messages())


def test_a_fork_while_a_batch_is_in_flight_sends_each_message_once(
    collector: Collector, tmp_path: Path
) -> None:
    arrived, gate = threading.Event(), threading.Event()
    dispatch = collector.routes.dispatch
    held = []

    def hold_first_batch(request: Any) -> Any:
        if request.path == "/v1/batch" and not held:
            held.append(request)
            arrived.set()
            gate.wait(30)  # the parent's batch stays in flight across the fork
        return dispatch(request)

    collector.routes.dispatch = hold_first_batch  # type: ignore[method-assign]
    client = Client("key", host=collector.url, flush_at=10, flush_interval=60)
    parent_ids = [client.track("parent", "Before Fork", {"i": i}) for i in range(10)]
    assert arrived.wait(10)
    assert client.stats().in_flight == 10
    result = tmp_path / "child.json"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            before = client.stats()
            ids = [client.track("child", "After Fork", {"i": i}) for i in range(5)]
            ok = client.close_and_flush(10)
            result.write_text(json.dumps({"ok": ok, "ids": ids, "in_flight": before.in_flight,
                                          "queued": before.queued}))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = json.loads(result.read_text())
    # The child neither inherited the batch in flight nor resent it.
    assert child == {"ok": True, "ids": child["ids"], "in_flight": 0, "queued": 0}
    gate.set()
    assert client.close_and_flush(10) is True
    stats = client.stats()
    assert (stats.queued, stats.delivered, stats.failed) == (10, 10, 0)
    messages = collector.messages()
    assert [m["messageId"] for m in messages if m["userId"] == "parent"] == parent_ids
    assert [m["messageId"] for m in messages if m["userId"] == "child"] == child["ids"]
    server = collector.stats()
    assert (server["total"], server["unique"], server["duplicates"]) == (15, 15, 0)


def test_a_child_leaving_with_os_exit_loses_only_its_own_queue(collector: Collector) -> None:
    # os._exit skips atexit: what the child queued and did not flush is gone (documented
    # for the in-memory queue); the parent's messages are not affected.
    client = Client("key", host=collector.url, flush_at=1000, flush_interval=60)
    parent_ids = [client.track("parent", "E", {"i": i}) for i in range(20)]
    pid = os.fork()
    if pid == 0:
        try:
            for i in range(30):
                client.track("child", "E", {"i": i})
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.close_and_flush(10) is True
    assert [m["messageId"] for m in collector.messages()] == parent_ids
    assert by_user(collector) == {"parent": 20}


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_workers_with_their_own_clients(
    collector: Collector, method: str
) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    context = multiprocessing.get_context(method)
    workers = [context.Process(target=interop_workers.send_and_close,
                               args=(collector.url, n, 300)) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert by_user(collector) == {f"worker-{n}": 300 for n in range(3)}
    assert collector.stats()["duplicates"] == 0


def test_fork_workers_sharing_the_parents_client(collector: Collector) -> None:
    client = Client("key", host=collector.url, flush_at=1000, flush_interval=60)
    parent_ids = [client.track("parent", "E", {"i": i}) for i in range(40)]
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=interop_workers.send_with_inherited,
                               args=(client, n, 200)) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert client.close_and_flush(10) is True
    counts = by_user(collector)
    assert counts == {"parent": 40, **{f"worker-{n}": 200 for n in range(3)}}
    assert [m["messageId"] for m in collector.messages() if m["userId"] == "parent"] == (
        parent_ids)
    assert collector.stats()["duplicates"] == 0


@pytest.mark.parametrize("queue", ["memory", "spool"])
def test_sigkill_loses_the_in_memory_queue_and_nothing_from_the_spool(
    collector: Collector, tmp_path: Path, queue: str
) -> None:
    spool = tmp_path / "spool"
    args = [sys.executable, str(KILL_CHILD), collector.url, "100"]
    if queue == "spool":
        args.append(str(spool))
    child = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=CHILD_ENV)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert collector.stats()["total"] == 0  # nothing had been sent
    if queue == "memory":
        return  # expected and documented: an in-memory queue dies with its process
    # The next process on the same spool delivers every accepted message, once.
    client = Client("key", host=collector.url, spool_dir=str(spool), flush_interval=60)
    assert client.close_and_flush(30) is True
    assert by_user(collector) == {"killed": 100}
    assert sorted(m["properties"]["i"] for m in collector.messages()) == list(range(100))
    assert collector.stats()["duplicates"] == 0
