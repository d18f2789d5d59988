"""install_sigterm_handler: flush within a deadline on SIGTERM, then chain (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import segment_client
from segment_client import Client, ConfigurationError, install_sigterm_handler
from segment_client.testing import RecordingTransport

CHILD = Path(__file__).parents[1] / "_support" / "sigterm_child.py"
ROOT = Path(__file__).resolve().parents[2]
COUNT = 250

pytestmark = pytest.mark.skipif(not hasattr(signal, "pause"), reason="POSIX signals")


def _run(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    sink = tmp_path / "sink.jsonl"
    sink.touch()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(sink), mode, str(COUNT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate("go\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    numbers = [json.loads(line)["properties"]["i"] for line in sink.read_text().splitlines()]
    return done, numbers


def test_default_action_flushes_then_dies_by_sigterm(tmp_path: Path) -> None:
    done, numbers = _run(tmp_path, "default")
    assert done.returncode == -signal.SIGTERM, done.stderr
    # atexit never runs on a SIGTERM death: these all came from the handler's flush.
    assert sorted(numbers) == list(range(COUNT))


def test_without_the_handler_sigterm_loses_the_queue(tmp_path: Path) -> None:
    """The control: what the handler prevents."""
    done, numbers = _run(tmp_path, "none")
    assert done.returncode == -signal.SIGTERM
    assert numbers == []


def test_previous_handler_runs_after_the_flush(tmp_path: Path) -> None:
    done, numbers = _run(tmp_path, "chain")
    assert done.returncode == 7, done.stderr
    assert f"previous handler saw {COUNT} delivered" in done.stdout
    assert sorted(numbers) == list(range(COUNT))


def test_ignored_sigterm_stays_ignored_after_the_flush(tmp_path: Path) -> None:
    done, numbers = _run(tmp_path, "ignore")
    assert done.returncode == 0, done.stderr
    assert f"survived with {COUNT} delivered" in done.stdout
    assert sorted(numbers) == list(range(COUNT))


def test_only_the_main_thread_may_install() -> None:
    client = Client("k", transport=RecordingTransport())
    errors: list[BaseException] = []

    def install() -> None:
        try:
            install_sigterm_handler(client)
        except ConfigurationError as exc:
            errors.append(exc)

    thread = threading.Thread(target=install)
    thread.start()
    thread.join()
    client.close_and_flush(5)
    assert len(errors) == 1 and "main thread" in str(errors[0])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="client"):
        install_sigterm_handler("client")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout"):
        install_sigterm_handler(Client("k", send=False), timeout=-1)
    assert "install_sigterm_handler" in segment_client.__all__
