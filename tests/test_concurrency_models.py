"""asyncio, gevent, eventlet and uWSGI (without threads): exact counts, deadlines kept."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import types
import urllib.request
from pathlib import Path

import pytest

from segment_client import Client
from segment_client import _uwsgi as uwsgi_seam
from segment_client.collector import Collector
from segment_client.testing import RecordingTransport
from tests._support.localhttp import LocalServer, ScriptedAPI

# -- asyncio -----------------------------------------------------------------------------


def test_aflush_waits_without_blocking_the_event_loop() -> None:
    gate = threading.Event()
    collector = ScriptedAPI(gate=gate)
    with LocalServer(collector) as api:
        client = Client("wk", host=api.url)

        async def main() -> tuple[bool, int]:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while ticks < 20:
                    ticks += 1
                    await asyncio.sleep(0.001)
                gate.set()  # the collector answers only once the loop has ticked 20 times

            client.track("u", "E")
            task = asyncio.create_task(ticker())
            delivered = await client.aflush(10)
            await task
            return delivered, ticks

        delivered, ticks = asyncio.run(main())
        assert delivered and ticks == 20
        assert asyncio.run(client.aclose(5))
    assert len(collector.messages) == 1
    assert client.stats().delivered == 1


def test_async_context_manager_closes(transport: RecordingTransport) -> None:
    async def main() -> Client:
        async with Client("wk", transport=transport) as client:
            client.track("u", "E")
        return client

    client = asyncio.run(main())
    assert transport.closed and len(transport.messages) == 1
    assert client.stats().delivered == 1


# -- gevent / eventlet (in a monkey-patched subprocess) -----------------------------------

GREEN_SCRIPT = textwrap.dedent(
    """
    import sys
    MODE = sys.argv[1]
    if MODE == "gevent":
        from gevent import monkey
        monkey.patch_all()
        import gevent
        spawn, sleep = gevent.spawn, gevent.sleep
        def joinall(tasks):
            gevent.joinall(tasks)
    else:
        import eventlet
        eventlet.monkey_patch()
        spawn, sleep = eventlet.spawn, eventlet.sleep
        def joinall(tasks):
            for task in tasks:
                task.wait()

    import json
    import threading
    import time

    from segment_client import Client

    fast_url, slow_url = sys.argv[2], sys.argv[3]
    out = {}

    client = Client("wk", host=fast_url, flush_at=10, flush_interval=0.05)
    def worker(n):
        for i in range(50):
            client.track(f"u{n}", f"E{i}")
            sleep(0)
    joinall([spawn(worker, n) for n in range(5)])
    out["flush"] = client.flush(10)
    out["consumer_is_green"] = type(client._consumer.thread).__module__
    out["closed"] = client.close_and_flush(10)
    stats = client.stats()
    out["delivered"], out["failed"] = stats.delivered, stats.failed

    # A collector that never answers: flush and close keep their deadlines and other
    # greenlets keep running while they wait.
    reported = []
    slow = Client("wk", host=slow_url, request_timeout=5, max_retries=0,
                  on_error=lambda e, m: reported.extend(m))
    ticks = [0]
    done = [False]
    def ticker():
        while not done[0]:
            ticks[0] += 1
            sleep(0.005)
    tick_task = spawn(ticker)
    for i in range(3):
        slow.track("u", f"S{i}")
    start = time.monotonic()
    out["slow_flush"] = slow.flush(0.3)
    out["slow_flush_s"] = time.monotonic() - start
    out["ticks_during_flush"] = ticks[0]
    start = time.monotonic()
    out["slow_close"] = slow.close_and_flush(0.3)
    out["slow_close_s"] = time.monotonic() - start
    out["slow_reported"] = len(reported)
    done[0] = True
    joinall([tick_task])
    print(json.dumps(out))
    """
)


def _run_green(mode: str, tmp_path: Path) -> dict[str, object]:
    # Never import it here: eventlet, once imported, warns on every os.fork() in this
    # process (and the fork tests fork). The subprocess imports it.
    if importlib.util.find_spec(mode) is None:
        pytest.skip(f"{mode} is not installed")
    script = tmp_path / "green.py"
    script.write_text(GREEN_SCRIPT)
    gate = threading.Event()
    fast, slow = ScriptedAPI(), ScriptedAPI(gate=gate)
    with LocalServer(fast) as fast_api, LocalServer(slow) as slow_api:
        try:
            proc = subprocess.run(
                [sys.executable, str(script), mode, fast_api.url, slow_api.url],
                capture_output=True, text=True, timeout=60,
            )
        finally:
            gate.set()
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(fast.messages) == 250
    assert sorted(m["event"] for m in fast.messages) == sorted(
        f"E{i}" for _ in range(5) for i in range(50)
    )
    return result


def _check_green(result: dict[str, object]) -> None:
    assert result["flush"] is True and result["closed"] is True
    assert result["delivered"] == 250 and result["failed"] == 0
    assert result["slow_flush"] is False and result["slow_close"] is False
    assert result["slow_reported"] == 3  # abandoned at the close deadline, and reported
    # Deadlines hold (generous bounds: this is about not hanging, not speed).
    assert float(result["slow_flush_s"]) < 3 and float(result["slow_close_s"]) < 3  # type: ignore[arg-type]
    assert int(result["ticks_during_flush"]) > 0  # type: ignore[call-overload]


def test_gevent_monkey_patched(tmp_path: Path) -> None:
    result = _run_green("gevent", tmp_path)
    _check_green(result)
    assert str(result["consumer_is_green"]).startswith("gevent")


def test_eventlet_monkey_patched(tmp_path: Path) -> None:
    result = _run_green("eventlet", tmp_path)
    _check_green(result)


# -- uWSGI without threads -----------------------------------------------------------------


def test_uwsgi_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    assert uwsgi_seam.threads_unavailable() is False  # not inside uWSGI
    fake = types.ModuleType("uwsgi")
    monkeypatch.setitem(sys.modules, "uwsgi", fake)
    fake.opt = {}  # type: ignore[attr-defined]
    assert uwsgi_seam.threads_unavailable() is True
    for options in ({"enable-threads": True}, {"enable-threads": b"1"}, {"threads": b"4"}):
        fake.opt = options  # type: ignore[attr-defined]
        assert uwsgi_seam.threads_unavailable() is False
    fake.opt = {"enable-threads": b"false"}  # type: ignore[attr-defined]
    assert uwsgi_seam.threads_unavailable() is True


def test_without_threads_callers_send_at_the_size_trigger_and_flush(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    transport: RecordingTransport,
) -> None:
    monkeypatch.setattr(uwsgi_seam, "threads_unavailable", lambda: True)
    client = Client("wk", transport=transport, flush_at=5, flush_interval=3600)
    with caplog.at_level(logging.WARNING, logger="segment_client"):
        for i in range(12):
            client.track("u", f"E{i}")
    assert client._consumer.thread is None  # no thread was started
    assert len(transport.messages) == 10  # two batches, sent by the calls themselves
    assert [len(b) for b in transport.batches] == [5, 5]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "--enable-threads" in warnings[0]
    assert client.flush(5)  # the request-end hook sends the rest
    assert len(transport.messages) == 12
    client.track("u", "last")
    assert client.close_and_flush(5)
    assert client.stats().delivered == 13 and client.stats().failed == 0


UWSGI_APP = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    from segment_client import Client, _uwsgi

    client = Client("wk", host=COLLECTOR, flush_at=3, flush_interval=3600)

    def application(environ, start_response):
        if environ["PATH_INFO"] == "/flush":
            body = str(client.flush(10)).encode()
        elif environ["PATH_INFO"] == "/detect":
            body = str(_uwsgi.threads_unavailable()).encode()
        else:
            client.track("u", environ["PATH_INFO"])
            body = b"ok"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    """
)


def _get(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def test_real_uwsgi_worker_without_threads(tmp_path: Path) -> None:
    binary = shutil.which("uwsgi", path=os.path.dirname(sys.executable)) or shutil.which("uwsgi")
    # uwsgi is in the test extra: a missing binary is a broken install, not a skip.
    assert binary is not None, "uwsgi is not installed: pip install --group dev -e ."
    with Collector() as collector:
        app = tmp_path / "app.py"
        app.write_text(UWSGI_APP.replace("COLLECTOR", repr(collector.url)))
        # The test listens and hands the socket to uwsgi: a request made before the
        # worker is up waits in the backlog instead of being refused (no polling).
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.set_inheritable(True)
        log = tmp_path / "uwsgi.log"
        proc = subprocess.Popen(
            [binary, "--http-socket", f"fd://{listener.fileno()}", "--wsgi-file", str(app),
             "--processes", "1", "--master", "--virtualenv", sys.prefix,
             "--die-on-term", "--logto", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=[listener.fileno()],
        )
        listener.close()
        try:
            base = f"http://127.0.0.1:{port}"
            assert _get(base + "/detect", timeout=60) == "True"
            for i in range(7):
                assert _get(f"{base}/e{i}") == "ok"
            assert len(collector.messages()) == 6  # two size triggers of 3, in the requests
            assert _get(base + "/flush") == "True"
            assert len(collector.messages()) == 7
            events = sorted(m["event"] for m in collector.messages())
        finally:
            proc.terminate()
            proc.wait(10)
    assert events == sorted(f"/e{i}" for i in range(7))
    assert "--enable-threads" in log.read_text()
