"""Hostile and unusual HTTP against `segment-client collector` in its own process: each
request gets its documented answer (a 4xx naming the problem, or what the docs promise),
the refusal is recorded, the process stays up and the next normal batch is stored."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests._support.cli_collector import CliCollector

IDLE = 1.0  # --idle-timeout: how long a whole request may take from its first byte
APP = "http://localhost:3000"  # an allowed browser origin


@pytest.fixture(name="child", scope="module")
def _child() -> Iterator[CliCollector]:
    with CliCollector("--idle-timeout", str(IDLE), "--allow-origin", APP) as child:
        yield child


def track() -> dict[str, Any]:
    return {"type": "track", "userId": "user-1", "event": "Signed Up",
            "messageId": str(uuid.uuid4())}


def batch_body() -> bytes:
    return json.dumps({"batch": [track()]}).encode()


def post(port: int, body: bytes, extra: bytes = b"", *, close: bool = True,
         content_type: bytes = b"application/json", target: bytes = b"/v1/batch",
         host: bytes | None = None) -> bytes:
    head = b"POST %s HTTP/1.1\r\n" % target
    if host is None:
        head += b"Host: 127.0.0.1:%d\r\n" % port
    elif host:
        head += b"Host: %s\r\n" % host
    head += b"Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, len(body))
    return head + (b"Connection: close\r\n" if close else b"") + extra + b"\r\n" + body


def exchange(port: int, data: bytes) -> bytes:
    """Send `data`, return all the collector answers until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def answers(raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    """(status, JSON body) of each answer in `raw`, in order (Content-Length framed)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0].startswith(b"HTTP/1.1 "), raw[:200]
        length = next(int(line.split(b":")[1]) for line in lines[1:]
                      if line.lower().startswith(b"content-length:"))
        body, raw = rest[:length], rest[length:]
        out.append((int(lines[0].split()[1]), json.loads(body) if body else {}))
    return out


def one(raw: bytes) -> tuple[int, str]:
    ((status, body),) = answers(raw)
    return status, str(body.get("message", ""))


@pytest.fixture(name="check")
def _check(child: CliCollector) -> Iterator[dict[str, int]]:
    """Around each test: the process is alive and a normal batch is still stored after
    it; `counts` tells how many messages and rejections the test expects to add."""
    before = child.stats()
    counts = {"stored": 0, "rejected": 0}
    yield counts
    assert child.alive()
    after = child.stats()
    assert after["total"] - before["total"] == counts["stored"]
    assert after["rejected_requests"] - before["rejected_requests"] == counts["rejected"]
    assert one(exchange(child.port, post(child.port, batch_body())))[0] == 200
    assert child.stats()["total"] == after["total"] + 1


def test_a_header_flood_is_a_431(child: CliCollector, check: dict[str, int]) -> None:
    flood = b"".join(b"X-Flood-%d: v\r\n" % i for i in range(5000))
    assert one(exchange(child.port, post(child.port, batch_body(), flood))) == (
        431, "the request has more than 100 headers")
    check["rejected"] = 1


def test_a_1_mb_header_line_is_a_431(child: CliCollector, check: dict[str, int]) -> None:
    line = b"X-Big: " + b"a" * (1 << 20) + b"\r\n"
    assert one(exchange(child.port, post(child.port, batch_body(), line))) == (
        431, "a header line is over 65536 bytes")
    check["rejected"] = 1


@pytest.mark.parametrize("part", ["head", "body"])
def test_a_request_trickled_byte_by_byte_is_cut_off_at_the_idle_timeout(
    child: CliCollector, check: dict[str, int], part: str
) -> None:
    # Each byte comes well within the idle timeout; the request as a whole does not.
    body = batch_body()
    data = post(child.port, body)
    split = data.index(b"Content-Type") if part == "head" else len(data) - len(body)
    pace = threading.Event()  # never set: its wait() paces this client
    with socket.create_connection(("127.0.0.1", child.port), timeout=10) as sock:
        sock.sendall(data[:split])
        started = time.monotonic()
        try:
            for byte in data[split:]:
                pace.wait(IDLE / 5)
                sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            pass
        took = time.monotonic() - started
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status, message = one(raw)
    assert status == 408 and "did not arrive within 1 s" in message
    assert took < 10 * IDLE  # cut off, not served for the ~100 s the trickle would take
    check["rejected"] = 1


def test_http_1_0_without_host_is_served(child: CliCollector, check: dict[str, int]) -> None:
    # HTTP/1.0 has no Host; browsers always send one, so DNS rebinding protection holds.
    body = batch_body()
    data = b"POST /v1/batch HTTP/1.0\r\nContent-Type: application/json\r\n" \
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    assert one(exchange(child.port, data))[0] == 200
    check["stored"] = 1


def test_absolute_form_targets(child: CliCollector, check: dict[str, int]) -> None:
    port = child.port
    own = b"http://127.0.0.1:%d/v1/batch" % port
    # As a client sends it through a proxy: served when its authority is the Host...
    assert one(exchange(port, post(port, batch_body(), target=own)))[0] == 200
    assert one(exchange(port, post(port, batch_body(), target=own, host=b"")))[0] == 200
    # ...refused when they disagree (either way round)...
    status, message = one(exchange(port, post(port, batch_body(),
                                              target=b"http://evil.test/v1/batch")))
    assert status == 400 and "names 'evil.test' but the Host header" in message
    status, message = one(exchange(port, post(port, batch_body(), target=own,
                                              host=b"evil.test")))
    assert status == 400 and "but the Host header 'evil.test'" in message
    # ...and a foreign authority alone is a rebound name.
    status, message = one(exchange(port, post(port, batch_body(), host=b"",
                                              target=b"http://evil.test/v1/batch")))
    assert status == 403 and "DNS rebinding" in message
    check.update(stored=2, rejected=3)


def test_pipelined_requests_are_answered_in_order(
    child: CliCollector, check: dict[str, int]
) -> None:
    port = child.port
    data = (post(port, batch_body(), close=False) + post(port, b"{", close=False)
            + post(port, batch_body(), close=False)
            + b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    statuses = [status for status, _ in answers(exchange(port, data))]
    assert statuses == [200, 400, 200, 200]
    check.update(stored=2, rejected=1)


def test_expect_100_continue(child: CliCollector, check: dict[str, int]) -> None:
    body = batch_body()
    head = post(child.port, body, b"Expect: 100-continue\r\n")[:-len(body)]
    with socket.create_connection(("127.0.0.1", child.port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before the body
        sock.sendall(body)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert one(raw)[0] == 200
    check["stored"] = 1


@pytest.mark.parametrize(("body", "fragment"), [
    (b'{"batch":[{"type":"track","userId":"\xff\xfe","event":"x"}]}',
     "not valid UTF-8: invalid start byte at byte 36"),
    (b'{"batch":[{"type":"track","userId":"u","event":"x","properties":{"\xc3(":1}}]}',
     "not valid UTF-8: invalid continuation byte"),
    (b'{"batch":[{"type":"track","userId":"\xed\xa0\x80","event":"x"}]}',  # a UTF-8 surrogate
     "not valid UTF-8"),
])
def test_invalid_utf8_in_json_strings_is_a_400(
    child: CliCollector, check: dict[str, int], body: bytes, fragment: str
) -> None:
    status, message = one(exchange(child.port, post(child.port, body)))
    assert status == 400 and fragment in message
    check["rejected"] = 1


@pytest.mark.parametrize(("encoding", "body", "status", "fragment"), [
    (b"gzip", gzip.compress(b'{"batch":[' + b" " * 20_000_000 + b"]}"), 400,
     "Exceed payload limit: request is over 512000 bytes"),
    (b"deflate", zlib.compress(b'{"batch":[' + b" " * 20_000_000 + b"]}"), 400,
     "Exceed payload limit"),
    (b"deflate", b"\x00" + zlib.compress(b"{}")[2:], 400, "not valid deflate"),
    (b"br", b"{}", 415, "unsupported Content-Encoding 'br' (gzip or deflate)"),
    (b"gzip, gzip", gzip.compress(gzip.compress(b"{}")), 415, "unsupported Content-Encoding"),
])
def test_bombs_and_unknown_encodings(
    child: CliCollector, check: dict[str, int], encoding: bytes, body: bytes, status: int,
    fragment: str,
) -> None:
    extra = b"Content-Encoding: %s\r\n" % encoding
    answer = one(exchange(child.port, post(child.port, body, extra)))
    assert answer[0] == status and fragment in answer[1]
    check["rejected"] = 1


def test_deflate_and_identity_are_accepted(child: CliCollector, check: dict[str, int]) -> None:
    port = child.port
    assert one(exchange(port, post(port, zlib.compress(batch_body()),
                                   b"Content-Encoding: deflate\r\n")))[0] == 200
    assert one(exchange(port, post(port, batch_body(),
                                   b"Content-Encoding: identity\r\n")))[0] == 200
    check["stored"] = 2


def test_a_form_post_from_a_browser_origin_is_refused(
    child: CliCollector, check: dict[str, int]
) -> None:
    port = child.port
    form = b"application/x-www-form-urlencoded"
    # Another site: 403 whatever the type (a form post needs no preflight).
    status, message = one(exchange(port, post(port, b"batch=1", b"Origin: http://evil.test\r\n",
                                              content_type=form)))
    assert status == 403 and "--allow-origin http://evil.test" in message
    # Even an allowed origin may send only JSON or text/plain.
    status, message = one(exchange(port, post(port, batch_body(),
                                              b"Origin: %s\r\n" % APP.encode(),
                                              content_type=form)))
    assert status == 415 and "x-www-form-urlencoded" in message
    check["rejected"] = 2


@pytest.mark.parametrize(("extra", "fragment"), [
    (b"Content-Length: 5\r\n", "repeats the Content-Length header"),
    (b"Host: evil.test\r\n", "repeats the Host header"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
     "repeats the Transfer-Encoding header"),
    (b"Content-Length : 3\r\n", "no space is allowed before the colon"),
    (b"X-A: a\x00b\r\n", "holds a NUL or CR character"),
    (b"X-A: a\rContent-Length: 3\r\n", "holds a NUL or CR character"),
])
def test_header_lines_two_parsers_could_read_differently_are_a_400(
    child: CliCollector, check: dict[str, int], extra: bytes, fragment: str
) -> None:
    status, message = one(exchange(child.port, post(child.port, batch_body(), extra)))
    assert status == 400 and fragment in message
    check["rejected"] = 1


def test_an_http_2_preface_gets_a_505_with_a_status_line(
    child: CliCollector, check: dict[str, int]
) -> None:
    raw = exchange(child.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 505 HTTP/2 is not supported: send HTTP/1.1\r\n")
