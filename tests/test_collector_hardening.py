"""The local collector against hostile and unusual input: one test per finding of the
hardening issue. Each asserts the documented answer, that the rejection is recorded,
and that the next normal batch is still stored."""

from __future__ import annotations

import base64
import concurrent.futures
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import segment_client
from segment_client import Client
from segment_client._json import MAX_DEPTH
from segment_client.collector import Collector
from segment_client.collector._store import Store

SUPPORT = Path(__file__).parent / "_support"
ROOT = Path(__file__).resolve().parents[1]
# Child processes import the same segment_client as this test.
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(segment_client.__file__).resolve().parents[1]),
     os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(name="collector")
def _collector() -> Iterator[Collector]:
    with Collector() as collector:
        yield collector


def track(user: str = "user-1", **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Signed Up",
            "messageId": str(uuid.uuid4()), **extra}


def post(collector: Collector, body: Any, path: str = "/v1/batch",
         **kwargs: Any) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    kwargs.setdefault("headers", {"Content-Type": "application/json"})
    return requests.post(collector.url + path, data=data, timeout=10, **kwargs)


def healthy(collector: Collector) -> None:
    """The next normal batch is answered 200 and stored."""
    before = collector.stats()["total"]
    assert post(collector, {"batch": [track(), track()]}).status_code == 200
    assert collector.stats()["total"] == before + 2


def exchange(collector: Collector, data: bytes, *, close_write: bool = False) -> bytes:
    """Send raw bytes, return everything the collector answers until it closes (or
    10 s pass without a byte: then the bytes so far)."""
    with socket.create_connection(("127.0.0.1", collector.port), timeout=10) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


def exchange_rest(sock: socket.socket) -> bytes:
    """Everything the collector sends on `sock` until it closes it."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


# -- 1. lone surrogates ------------------------------------------------------------------

def test_1_a_lone_surrogate_is_stored_as_u_fffd_and_never_poisons_the_store(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "store.sqlite3")
    with Collector(db=db) as collector:
        body = b'{"batch":[{"type":"track","userId":"\\ud800","event":"x\\udc00y"}]}'
        assert post(collector, body).status_code == 200
        # An invalid message naming a surrogate in its messageId: its rejection is kept.
        body = b'{"batch":[{"type":"track","event":"x","messageId":"\\ud83d"}]}'
        assert post(collector, body).status_code == 200
        single = b'{"userId":"u","event":"e","properties":{"\\udfff":"\\ud800"}}'
        assert post(collector, single, "/v1/track").status_code == 200
        for _ in range(10):
            assert post(collector, {"batch": [track() for _ in range(100)]}).status_code == 200
        stats = collector.stats()
        assert (stats["total"], stats["rejected_requests"]) == (1002, 1)
        first, second = collector.messages()[:2]
        assert (first["userId"], first["event"]) == ("\ufffd", "x\ufffdy")
        assert second["properties"] == {"\ufffd": "\ufffd"}
        # A valid pair is kept as it is.
        pair = b'{"batch":[{"type":"track","userId":"\\ud83d\\ude00","event":"e"}]}'
        assert post(collector, pair).status_code == 200
        assert collector.messages()[-1]["userId"] == "\U0001f600"
    with Collector(db=db) as reopened:  # after a restart nothing is gone
        stats = reopened.stats()
        assert (stats["total"], stats["rejected_requests"]) == (1003, 1)
        (rejection,) = reopened.rejections()
        assert "dropped invalid message 0" in rejection["reason"]


# -- 2. nesting --------------------------------------------------------------------------

def nested_message(levels: int, kind: str = "{") -> bytes:
    """A track message whose deepest object/array is at `levels` (the message: 1)."""
    if kind == "{":
        inner = b'{"a":' * (levels - 2) + b"{}" + b"}" * (levels - 2)
    else:
        inner = b'{"a":' + b"[" * (levels - 3) + b"[1]" + b"]" * (levels - 3) + b"}"
    return b'{"type":"track","userId":"u","event":"deep","properties":' + inner + b"}"


@pytest.mark.parametrize("kind", ["{", "["])
def test_2_nesting_past_the_shared_limit_is_a_400_naming_it_and_is_recorded(
    collector: Collector, kind: str
) -> None:
    ok = nested_message(MAX_DEPTH, kind)
    assert post(collector, b'{"batch":[' + ok + b"]}").status_code == 200
    assert post(collector, ok, "/v1/track").status_code == 200
    for levels in (MAX_DEPTH + 1, 254, 5_000):
        deep = nested_message(levels, kind)
        for body, path in ((b'{"batch":[' + deep + b"]}", "/v1/batch"), (deep, "/v1/track")):
            response = post(collector, body, path)
            assert response.status_code == 400, (levels, path)
            assert f"limit of {MAX_DEPTH} levels" in response.json()["message"]
    # One deep message among 100 refuses that request (the client's split finds it).
    batch = b",".join([json.dumps(track()).encode()] * 99 + [nested_message(300, kind)])
    assert post(collector, b'{"batch":[' + batch + b"]}").status_code == 400
    assert [r["status"] for r in collector.rejections()] == [400] * 7
    assert collector.stats()["total"] == 2
    healthy(collector)


def test_2_a_batch_context_too_deep_for_its_messages_is_refused(collector: Collector) -> None:
    # The batch context is level 2 of each message: 100 levels of it are one too many.
    context = json.loads(b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH)
    response = post(collector, {"batch": [track()], "context": context})
    assert response.status_code == 400
    assert f"limit of {MAX_DEPTH} levels" in response.json()["message"]
    healthy(collector)


# -- 3. lengths, chunking, paths, query values -------------------------------------------

@pytest.mark.parametrize("head, reason", [
    (b"POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n{",
     "Content-Length"),
    (b"POST /v1/batch HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n{", "Content-Length"),
    (b"POST /v1/batch HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{", "payload limit"),
    (b"POST /v1/batch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n{", "hexadecimal"),
    (b"POST /v1/batch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{", "hexadecimal"),
    (b"POST /v1/batch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{}{}\r\n", "longer"),
    (b"POST /v1/batch HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
     "both"),
    (b"POST /v1/batch HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
])
def test_3_bad_lengths_and_chunking_are_answered_at_once_and_recorded(
    collector: Collector, head: bytes, reason: str
) -> None:
    # The client keeps its side open: the collector must answer without waiting for
    # the rest of a body it will never read.
    answer = exchange(collector, head)
    assert 400 <= status_of(answer) < 600 and status_of(answer) != 500
    assert reason.encode() in answer
    assert b"Connection: close" in answer
    (rejection,) = collector.rejections()
    assert reason in rejection["reason"]
    healthy(collector)


def test_3_odd_paths_and_huge_query_values_get_an_answer(collector: Collector) -> None:
    for request_line in (b"GET /static/a\x00b.js HTTP/1.1", b"GET /static/" + b"a" * 5000
                         + b" HTTP/1.1", b"GET /static/" + b"a/" * 3000 + b" HTTP/1.1"):
        answer = exchange(collector, request_line + b"\r\nConnection: close\r\n\r\n")
        assert status_of(answer) == 404
    for route in ("events", "rejections"):
        answer = exchange(collector, f"GET /v1/{route}?after={2**63} HTTP/1.1\r\n"
                          "Connection: close\r\n\r\n".encode())
        assert status_of(answer) == 400 and b"at most" in answer
    healthy(collector)


def test_3_a_chunked_batch_and_a_body_left_unread_keep_the_connection_sane(
    collector: Collector,
) -> None:
    body = json.dumps({"batch": [track()]}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    answer = exchange(collector, b"POST /v1/batch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n" + chunked)
    assert status_of(answer) == 200
    # A body sent to a route that does not read it is not taken for the next request.
    smuggled = b"GET /v1/clear HTTP/1.1\r\n\r\n"
    answer = exchange(collector, b"GET /v1/stats HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(smuggled), smuggled))
    assert answer.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in answer
    assert collector.stats()["total"] == 1


# -- 4. bombs and amplification ----------------------------------------------------------

def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


@pytest.fixture(name="child")
def _child(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    db = str(tmp_path / "child.sqlite3")
    process = subprocess.Popen(
        [sys.executable, str(SUPPORT / "collector_process.py"), db],
        stdout=subprocess.PIPE, text=True, env=CHILD_ENV,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("PORT "), line
    try:
        yield process, f"http://127.0.0.1:{line.split()[1]}", db
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_4_hostile_bodies_stay_within_a_small_multiple_of_their_size(
    child: tuple[subprocess.Popen[str], str, str],
) -> None:
    process, url, _ = child
    session = requests.Session()
    assert session.post(f"{url}/v1/batch", json={"batch": [track()]}, timeout=10).ok
    baseline = memory_kib(process.pid)["VmRSS"]
    zeros = b'{"batch":[' + b",".join([b"0"] * 250_000) + b"]}"  # 500 KB
    assert len(zeros) <= 500 * 1024
    bodies = {
        "250,000 elements": zeros,
        "2,500 invalid messages": b'{"batch":[' + b",".join([b"0"] * 2500) + b"]}",
        "250,000 levels": b"[" * 250_000 + b"]" * 250_000,
        "a gzip bomb": gzip.compress(b'{"batch":[' + b" " * 100_000_000 + b"]}"),
        "wide and deep": b'{"batch":[' + b",".join([b"[" * 20 + b"]" * 20] * 12_000) + b"]}",
    }

    def send(body: bytes) -> int:
        headers = {"Content-Encoding": "gzip"} if body[:2] == b"\x1f\x8b" else {}
        with requests.Session() as own:
            return own.post(f"{url}/v1/batch", data=body, headers=headers, timeout=60).status_code

    statuses = {name: send(body) for name, body in bodies.items()}
    assert statuses == {"250,000 elements": 400, "2,500 invalid messages": 200,
                        "250,000 levels": 400, "a gzip bomb": 400, "wide and deep": 400}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # four at once
        assert list(pool.map(send, [zeros] * 4)) == [400] * 4
    peak = memory_kib(process.pid)["VmHWM"]
    # Measured peak growth: a few MB (it was 1 GB for one such body, 3.7 GB for four).
    assert peak - baseline < 64 * 1024, (baseline, peak)
    stats = session.get(f"{url}/v1/stats", timeout=10).json()
    # The 2,500 invalid messages: one rejection each, written in one transaction.
    assert stats["rejected_requests"] == 2500 + 8
    assert session.post(f"{url}/v1/batch", json={"batch": [track()]}, timeout=10).ok
    assert session.get(f"{url}/v1/stats", timeout=10).json()["total"] == 2


# -- 5. CSRF and DNS rebinding (raw requests; tests/browser shows it in Chromium) ---------

def test_5_host_origin_and_fetch_site_checks(collector: Collector) -> None:
    url = collector.url
    own = f"http://127.0.0.1:{collector.port}"
    # A rebound name is refused on every route, the page included.
    for path in ("/", "/v1/events", "/v1/stats"):
        response = requests.get(url + path, headers={"Host": f"evil.test:{collector.port}"},
                                timeout=5)
        assert response.status_code == 403 and "DNS rebinding" in response.text
    # Loopback names and IP literals are this machine.
    for host in ("localhost", "127.0.0.1", "app.localhost", "[::1]", "10.1.2.3"):
        response = requests.get(url + "/v1/stats", headers={"Host": f"{host}:1"}, timeout=5)
        assert response.status_code == 200, host
    # Control and read routes: cross-site browser requests are refused.
    evil = {"Origin": "http://evil.test", "Content-Type": "text/plain"}
    assert requests.post(url + "/v1/clear", headers=evil, timeout=5).status_code == 403
    faults = json.dumps({"faults": [{"status": 500}]})
    assert requests.post(url + "/v1/faults", data=faults, headers=evil,
                         timeout=5).status_code == 403
    site = {"Sec-Fetch-Site": "cross-site"}
    assert requests.get(url + "/v1/events", headers=site, timeout=5).status_code == 403
    assert requests.get(url + "/v1/events", headers={"Sec-Fetch-Site": "same-site"},
                        timeout=5).status_code == 403
    # Ingest from another origin, text/plain as a page would send it: refused.
    response = post(collector, {"batch": [track()]}, headers=evil)
    assert response.status_code == 403 and "--allow-origin" in response.json()["message"]
    assert "Access-Control-Allow-Origin" not in response.headers
    # Every refusal is recorded, naming why.
    assert [r["status"] for r in collector.rejections()] == [403] * 8
    assert collector.stats()["total"] == 0
    # The collector's own page, and programs (no Origin), pass.
    mine = {"Origin": own, "Sec-Fetch-Site": "same-origin"}
    assert requests.post(url + "/v1/clear", headers=mine, timeout=5).status_code == 200
    assert requests.get(url + "/v1/faults", timeout=5).status_code == 200
    assert post(collector, {"batch": [track()]}, headers=mine).status_code == 200
    assert collector.faults()["faults"] == []
    assert collector.stats()["total"] == 1
    assert collector.rejections() == []  # cleared by the page's own request
    # The debugger page may not be framed by another site.
    page = requests.get(url + "/", timeout=5)
    assert page.headers["X-Frame-Options"] == "DENY"


def test_5_allowed_origins_get_cors_for_exactly_them(tmp_path: Path) -> None:
    app = "http://localhost:3000"
    with Collector(allowed_origins=[app, "http://127.0.0.1:8080/"]) as collector:
        url = collector.url
        preflight = {"Origin": app, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type"}
        answer = requests.options(url + "/v1/batch", headers=preflight, timeout=5)
        assert answer.status_code == 204
        assert answer.headers["Access-Control-Allow-Origin"] == app
        assert "POST" in answer.headers["Access-Control-Allow-Methods"]
        private = {**preflight, "Access-Control-Request-Private-Network": "true"}
        answer = requests.options(url + "/v1/track", headers=private, timeout=5)
        assert answer.headers["Access-Control-Allow-Private-Network"] == "true"
        other = {**preflight, "Origin": "http://localhost:3001"}
        answer = requests.options(url + "/v1/batch", headers=other, timeout=5)
        assert answer.status_code == 403
        assert "Access-Control-Allow-Origin" not in answer.headers
        # analytics.js sends text/plain: accepted from the allowed origin, with CORS.
        response = post(collector, {"batch": [track()]},
                        headers={"Origin": app, "Content-Type": "text/plain;charset=UTF-8"})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == app
        assert post(collector, {"batch": [track()]}, headers={
            "Origin": "http://127.0.0.1:8080", "Content-Type": "text/plain"}).status_code == 200
        # A form post from the allowed origin is not what analytics.js sends.
        response = post(collector, b"batch=1", headers={
            "Origin": app, "Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 415
        # Allowed origins still cannot read or control.
        read = requests.get(url + "/v1/events", headers={"Origin": app}, timeout=5)
        assert read.status_code == 403
        assert collector.stats()["total"] == 2
    with pytest.raises(ValueError, match="scheme://host"):
        Collector(allowed_origins=["localhost:3000"])
    with pytest.raises(ValueError, match="no path"):
        Collector(allowed_origins=["http://localhost:3000/app"])


def test_5_allowed_hosts_option(collector: Collector) -> None:
    with Collector(allowed_hosts=["collector.internal"]) as named:
        headers = {"Host": f"collector.internal:{named.port}"}
        assert requests.get(named.url + "/v1/stats", headers=headers, timeout=5).ok
        headers = {"Host": f"other.internal:{named.port}"}
        answer = requests.get(named.url + "/v1/stats", headers=headers, timeout=5)
        assert answer.status_code == 403 and "--allow-host other.internal" in answer.text


# -- 6. 200 means committed --------------------------------------------------------------

def test_6_kill_9_right_after_a_200_loses_nothing(tmp_path: Path) -> None:
    for attempt in range(3):
        db = str(tmp_path / f"kill-{attempt}.sqlite3")
        process = subprocess.Popen(
            [sys.executable, str(SUPPORT / "collector_process.py"), db,
             "--slow-validator", "0.002"],
            stdout=subprocess.PIPE, text=True, env=CHILD_ENV,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("PORT "), line
            client = Client("key", host=f"http://127.0.0.1:{line.split()[1]}", flush_at=100,
                            max_retries=0)
            for i in range(300):
                client.track(f"user-{i}", "Acknowledged")
            assert client.flush(30)
            os.kill(process.pid, signal.SIGKILL)  # at once, before anything else runs
            process.wait(10)
            client.close_and_flush(5)
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)
        store = Store(db)
        try:
            assert store.stats()["total"] == 300, attempt
        finally:
            store.close()


# -- 7. connection floods ----------------------------------------------------------------

def test_7_past_the_connection_cap_new_connections_get_503_and_the_others_are_served(
) -> None:
    with Collector(max_connections=8) as collector:
        idle = [socket.create_connection(("127.0.0.1", collector.port), timeout=10)
                for _ in range(8)]
        try:
            # Accepted in order: the ninth finds eight connections being served.
            answer = exchange(collector, b"")
            assert status_of(answer) == 503 and b"Connection: close" in answer
            assert collector.stats()["refused_connections"] == 1
            body = json.dumps({"batch": [track()]}).encode()
            for sock in idle:  # every connection it had is still served
                sock.sendall(b"POST /v1/batch HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        finally:
            for sock in idle:
                sock.close()
        assert collector.stats()["total"] == 8


def test_7_idle_connections_are_closed_after_the_idle_timeout() -> None:
    with Collector(idle_timeout=0.2) as collector:
        with socket.create_connection(("127.0.0.1", collector.port), timeout=10) as sock:
            sock.sendall(b"GET /v1/stats HTTP/1.1\r\n")  # then nothing more
            # Answered 408 and closed by the collector, not by our timeout.
            answer = exchange_rest(sock)
            assert answer.startswith(b"HTTP/1.1 408 ") and b"head did not arrive" in answer
        with socket.create_connection(("127.0.0.1", collector.port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            assert sock.recv(65536) == b""  # idle keep-alive: closed too
    with pytest.raises(ValueError, match="max_connections"):
        Collector(max_connections=0)


# -- 8. the write key --------------------------------------------------------------------

def start_cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "segment_client", "collector", "--port", "0", "--db",
         ":memory:", "--quiet", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**CHILD_ENV, **env},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "listening on http://" in line, (line, process.stderr and process.stderr.read())
    return process, line.split("listening on ")[1].split()[0]


@pytest.mark.parametrize("source", ["file", "environment"])
def test_8_the_write_key_from_a_file_or_the_environment_stays_off_the_command_line(
    tmp_path: Path, source: str
) -> None:
    key = "s3cret-" + uuid.uuid4().hex
    if source == "file":
        path = tmp_path / "key"
        path.write_text(key + "\n")
        process, url = start_cli(["--write-key-file", str(path)], {})
    else:
        process, url = start_cli([], {"SEGMENT_COLLECTOR_WRITE_KEY": key})
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert key.encode() not in cmdline
        body = {"batch": [track()]}
        assert requests.post(url + "/v1/batch", json=body, timeout=10).status_code == 401
        assert requests.post(url + "/v1/batch", json=body, auth=("wrong", ""),
                             timeout=10).status_code == 401
        assert requests.post(url + "/v1/batch", json=body, auth=(key, ""),
                             timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
    assert key not in out


def test_8_a_write_key_file_that_cannot_be_read_is_a_usage_error(tmp_path: Path) -> None:
    from segment_client._cli import main

    assert main(["collector", "--write-key-file", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").write_text("\n")
    assert main(["collector", "--write-key-file", str(tmp_path / "empty")]) == 2


def test_8_a_write_key_inside_a_body_is_never_stored_or_served() -> None:
    key = "body-key-" + uuid.uuid4().hex
    with Collector(write_key=key) as collector:
        single = {"userId": "u", "event": "Single", "writeKey": key}
        assert post(collector, single, "/v1/track").status_code == 200
        batch = {"writeKey": key, "batch": [track(writeKey=key), track()]}
        assert post(collector, batch).status_code == 200
        spaced = json.dumps(batch, indent=2).encode()  # the exact (stdlib) path
        assert post(collector, spaced).status_code == 200
        auth = base64.b64encode(f"{key}:".encode()).decode()
        served = requests.get(collector.url + "/v1/events?limit=100",
                              headers={"Authorization": f"Basic {auth}"}, timeout=5).text
        assert collector.stats()["total"] == 5
        assert key not in served
        assert all("writeKey" not in m for m in collector.messages())


# -- 10. docs ----------------------------------------------------------------------------

def test_10_every_collector_option_is_documented() -> None:
    import argparse

    from segment_client.collector._command import add_parser

    parser = argparse.ArgumentParser()
    command = add_parser(parser.add_subparsers())
    options = [o for action in command._actions for o in action.option_strings
               if o.startswith("--") and o != "--help"]
    assert "--tracking-plan" in options and "--allow-origin" in options
    cli = (ROOT / "docs" / "cli.md").read_text()
    collector_md = (ROOT / "docs" / "collector.md").read_text()
    missing = [o for o in options if f"`{o}" not in cli or o not in collector_md]
    assert missing == []
    assert "## Security model" in collector_md


# -- the store keeps working after a failed transaction (finding 1's cause) ---------------

def test_1_a_failing_transaction_is_rolled_back_and_others_in_its_group_are_kept() -> None:
    store = Store()
    good = [(track(), json.dumps(track()), [])]
    bad = [(track(), "\ud800", [])]  # text SQLite cannot encode: the insert fails
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def write(messages: Any, batch: str) -> None:
        barrier.wait()
        try:
            store.add_batch(batch, "2024-01-01T00:00:00.000Z", messages)
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(good, "b-1")),
               threading.Thread(target=write, args=(bad, "b-2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 1 and "could not store" in str(errors[0])
    assert store.stats()["total"] == 1
    assert store.add_batch("b-3", "2024-01-01T00:00:00.000Z", good) == (1, 1)
    assert store.stats()["total"] == 2
    store.close()
