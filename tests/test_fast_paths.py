"""The optimised hot-path pieces keep their contracts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal

import pytest
import responses

from segment_client import _json
from segment_client._messages import build_track, new_message_id
from segment_client._transports._http import HTTPTransport


def test_message_ids_are_distinct_uuid4_text() -> None:
    ids = [new_message_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


class Color(enum.Enum):
    RED = "red"
    ONE = 1


@dataclasses.dataclass
class Point:
    x: int


AWKWARD: list[object] = [
    {"paid_at": dt.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=dt.timezone.utc)},
    dt.datetime(2024, 5, 1, 12, 30, 15, 1),
    dt.datetime(2024, 5, 1, tzinfo=dt.timezone(dt.timedelta(hours=-4))),
    dt.date(2024, 1, 2),
    dt.time(1, 2, 3, 4),
    dt.time(1, 2, tzinfo=dt.timezone.utc),  # orjson refuses: stdlib fallback
    uuid.UUID(int=1),
    [Color.RED, Color.ONE],
    Decimal("12.5"),
    Decimal("NaN"),
    {"big": 2**70},  # beyond 64 bits: stdlib fallback
    {1: "int key", None: "none key"},  # non-string keys: stdlib fallback
    [float("nan"), float("inf"), -0.0, 1e-7, 0.1 + 0.2],
    {3},
    (1, 2),
    b"text",
    b"\xff\xfe",
    "snowman ☃ \u2028",
    "\ud800",  # a lone surrogate
    Point(1),  # dataclasses are str() with a warning on both paths
]


@pytest.mark.skipif(_json._fast_dumps is None, reason="orjson is not installed")
@pytest.mark.parametrize("value", AWKWARD, ids=repr)
def test_orjson_and_stdlib_paths_send_the_same_json(
    value: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fast = _json.dumps({"v": value})
    monkeypatch.setattr(_json, "_fast_dumps", None)
    pure = _json.dumps({"v": value})
    assert json.loads(fast) == json.loads(pure)


def test_a_built_message_encodes_identically_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = build_track(
        "user-1", "Order Completed",
        {"revenue": 59.99, "at": dt.datetime(2024, 5, 1), "items": [{"sku": "A", "n": 2}]},
        {"ip": "127.0.0.1"}, None, None, None, None,
    )
    fast = _json.dumps(message)
    monkeypatch.setattr(_json, "_fast_dumps", None)
    assert _json.dumps(message) == fast


def test_the_session_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy and CA variables are resolved for the transport's URL when its session is
    made; requests then stops re-reading them on every request."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "all_proxy", "no_proxy", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/tmp/bundle.pem")
    transport = HTTPTransport("wk", url="https://api.segment.io/v1/batch")
    session = transport._get_session()
    assert session.trust_env is False
    assert session.proxies == {"https": "http://proxy.invalid:3128"}
    assert session.verify == "/tmp/bundle.pem"
    transport.close()

    monkeypatch.setenv("NO_PROXY", "api.segment.io")
    explicit = HTTPTransport(
        "wk", url="https://api.segment.io/v1/batch", session_options={"verify": False}
    )
    session = explicit._get_session()
    assert session.proxies == {}
    assert session.verify is False
    explicit.close()


def test_message_ids_after_fork_are_not_the_parents() -> None:
    """The child must not hand out ids the parent already made (they would dedupe)."""
    import os

    new_message_id()  # fill the parent's pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, "\n".join(new_message_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = pipe.read().split("\n")
    os.waitpid(pid, 0)
    parent_ids = [new_message_id() for _ in range(5)]
    assert len(child_ids) == 5
    assert not set(child_ids) & set(parent_ids)


@responses.activate
def test_prepared_template_keeps_headers_retries_and_cookies_exact() -> None:
    url = "http://collector.test/v1/batch"
    responses.add(responses.POST, url, status=200, headers={"Set-Cookie": "lb=node-2"})
    transport = HTTPTransport("wk", url=url, gzip=False)
    transport.send([b'{"n":1}'])
    transport.send([b'{"n":2}', b'{"n":3}'], retry_count=2)
    transport.send([b'{"n":4}'])
    transport.close()
    sent = [call.request for call in responses.calls]
    bodies = [json.loads(request.body) for request in sent]
    assert [len(body["batch"]) for body in bodies] == [1, 2, 1]
    for request in sent:
        assert request.headers["Content-Length"] == str(len(request.body))
        assert request.headers["Authorization"].startswith("Basic ")
    assert "X-Retry-Count" not in sent[0].headers
    assert sent[1].headers["X-Retry-Count"] == "2"
    assert "X-Retry-Count" not in sent[2].headers
    # A cookie the collector set is sent back, as session.post would.
    assert "Cookie" not in sent[0].headers
    assert sent[2].headers["Cookie"] == "lb=node-2"
