"""The Celery integration: context carried in headers, a client per prefork process."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from segment_client import Client, context_defaults
from segment_client.integrations.celery import SegmentCelery
from tests.integrations.conftest import EXAMPLES, Recorder

ROOT = Path(__file__).resolve().parents[2]
REQUEST = {
    "anonymous_id": "anon-c",
    "context": {"ip": "203.0.113.7", "page": {"path": "/signup"}, "requestId": "req-c"},
}


@pytest.fixture
def example(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    module = importlib.import_module("celery_worker")
    monkeypatch.setattr(module, "make_client", recorder)
    module.segment.init_app(module.app)
    yield module
    module.segment.disconnect()
    module.segment._client.reset()


def test_task_runs_with_the_callers_request_context(example: Any, recorder: Recorder) -> None:
    # The worker runs tasks on its own thread: a ContextVar cannot reach it, only the
    # task headers can.
    # Short broker polls keep this test quick; the defaults poll every second.
    example.app.conf.broker_transport_options = {"polling_interval": 0.05}
    with start_worker(example.app, pool="solo", perform_ping_check=False):
        with context_defaults(**REQUEST):
            result = example.send_welcome_email.delay("u-1")
        assert result.get(timeout=20) == os.getpid()
        plain = example.send_welcome_email.delay("u-2")  # sent outside any request
        plain.get(timeout=20)
    first, second = recorder.messages()
    assert first["userId"] == "u-1"  # the task's own argument
    assert first["anonymousId"] == "anon-c"
    context = dict(first["context"])
    del context["library"]
    assert context == REQUEST["context"]
    assert second["userId"] == "u-2"
    assert "anonymousId" not in second and "ip" not in second["context"]


def test_eager_tasks_keep_the_callers_context(example: Any, recorder: Recorder) -> None:
    example.app.conf.task_always_eager = True
    try:
        with context_defaults(**REQUEST):
            example.send_welcome_email.delay("u-3")
    finally:
        example.app.conf.task_always_eager = False
    (message,) = recorder.messages()
    assert message["anonymousId"] == "anon-c"


def test_prefork_children_build_their_own_client_and_flush_at_shutdown(
    tmp_path: Path,
) -> None:
    for name in ("broker", "processed", "results", "control"):
        (tmp_path / name).mkdir()
    env = {
        # Not DJANGO_SETTINGS_MODULE (set by the Django tests): Celery would load Django.
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "SEGMENT_TEST_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), str(EXAMPLES)]),
    }
    # The sending side: its own app on the same broker, publishing with the
    # integration's header (the example app in this process is bound to memory://).
    sender = Celery("sender", broker="filesystem://", backend=f"file://{tmp_path / 'results'}")
    sender.conf.broker_transport_options = {
        "data_folder_in": str(tmp_path / "broker"),
        "data_folder_out": str(tmp_path / "broker"),
        "processed_folder": str(tmp_path / "processed"),
        "control_folder": str(tmp_path / "control"),
    }
    publisher = SegmentCelery(sender, client=lambda: Client("unused", send=False))
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "tests._support.celery_prefork_app",
            "worker", "--pool=prefork", "--concurrency=2", "--loglevel=WARNING",
            "--without-heartbeat", "--without-mingle", "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with context_defaults(**REQUEST):
            results = [
                sender.send_task("celery_worker.send_welcome_email", (f"u-{i}",))
                for i in range(6)
            ]
        task_pids = {result.get(timeout=60) for result in results}
        worker.send_signal(signal.SIGTERM)  # warm shutdown: pool processes exit cleanly
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()
        publisher.disconnect()
    output = log_path.read_text()
    assert worker.returncode == 0, output
    lines = (tmp_path / "sink.jsonl").read_text().splitlines()
    messages = [json.loads(line) for line in lines]
    assert sorted(m["userId"] for m in messages) == [f"u-{i}" for i in range(6)]
    assert {m["anonymousId"] for m in messages} == {"anon-c"}
    assert {m["context"]["requestId"] for m in messages} == {"req-c"}
    # Sent by the pool children themselves (not the main worker, nor this process),
    # each through the client it built after the fork, flushed as it shut down.
    assert task_pids.isdisjoint({worker.pid, os.getpid()})
    assert all(m["_deliveredBy"] == m["properties"]["pid"] for m in messages)
    assert {m["properties"]["pid"] for m in messages} <= task_pids
