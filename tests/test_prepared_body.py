"""The HTTP transport builds each batch's body once: retries refresh only the tail
(sentAt), and a changed batch (a 413 split, poison isolation) gets a body of its own."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest
import responses

from segment_client import APIError, Client, HTTPTransport
from segment_client._batch import build_body
from segment_client._transports import _http

URL = "https://collector.test/v1/batch"
FAST = {"retry_base_delay": 0.0, "retry_max_delay": 0.0}


@pytest.fixture(name="stamps")
def _stamps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """sentAt of each attempt: a new, distinct stamp per call."""
    made: list[str] = []

    def stamp() -> str:
        made.append(f"2024-01-01T00:00:{len(made):02d}.000Z")
        return made[-1]

    monkeypatch.setattr(_http, "now_timestamp", stamp)
    return made


@pytest.fixture(name="heads")
def _heads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size (in messages) of every body head built."""
    built: list[int] = []
    real: Callable[[Any], bytes] = _http.build_head

    def counting(messages: Any) -> bytes:
        built.append(len(messages))
        return real(messages)

    monkeypatch.setattr(_http, "build_head", counting)
    return built


def decoded(call: Any) -> dict[str, Any]:
    body = call.request.body
    if call.request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    result: dict[str, Any] = json.loads(body)
    return result


BATCH = [json.dumps({"i": i, "pad": "x" * 50}).encode() for i in range(50)]


def test_retries_refresh_sent_at_and_reuse_the_head(
    api: responses.RequestsMock, stamps: list[str], heads: list[int]
) -> None:
    for status in (500, 503, 200):
        api.post(URL, status=status)
    transport = HTTPTransport("k", url=URL)
    for retry, status in enumerate((500, 503)):
        with pytest.raises(APIError) as info:
            transport.send(BATCH, retry_count=retry)
        assert info.value.status == status
    transport.send(BATCH, retry_count=2)
    bodies = [decoded(call) for call in api.calls]
    assert [b["sentAt"] for b in bodies] == stamps == [
        "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:01.000Z", "2024-01-01T00:00:02.000Z"
    ]
    assert all(b["batch"] == [json.loads(m) for m in BATCH] for b in bodies)
    assert all(b["writeKey"] == "k" for b in bodies)
    assert heads == [50]  # joined and compressed once for the three attempts
    assert transport._prepared is None  # delivered: nothing kept


def test_body_is_exactly_the_joined_messages(
    api: responses.RequestsMock, stamps: list[str]
) -> None:
    api.post(URL, status=200)
    api.post(URL, status=200)
    HTTPTransport("k", url=URL, gzip=False).send(BATCH)
    HTTPTransport("k", url=URL).send(BATCH)
    plain, packed = (call.request.body for call in api.calls)
    assert plain == build_body(BATCH, stamps[0], "k")
    assert gzip.decompress(packed) == build_body(BATCH, stamps[1], "k")


def test_a_different_batch_of_the_same_length_gets_its_own_body(
    api: responses.RequestsMock, stamps: list[str], heads: list[int]
) -> None:
    api.post(URL, status=500)
    api.post(URL, status=200)
    transport = HTTPTransport("k", url=URL)
    batch = list(BATCH)
    with pytest.raises(APIError):
        transport.send(batch)
    batch[7] = b'{"replaced":true}'  # the same list object, changed in place
    transport.send(batch, retry_count=1)
    assert decoded(api.calls[1])["batch"][7] == {"replaced": True}
    assert heads == [50, 50]


def test_a_413_split_sends_the_right_body_for_each_half(
    api: responses.RequestsMock, stamps: list[str], heads: list[int]
) -> None:
    api.post(URL, status=413)
    api.post(URL, status=500)
    api.post(URL, status=200)
    api.post(URL, status=200)
    client = Client("k", host="https://collector.test", **FAST)
    ids = [client.track("u", f"E{i}") for i in range(6)]
    assert client.flush(5)
    client.close_and_flush(5)
    batches = [[m["messageId"] for m in decoded(call)["batch"]] for call in api.calls]
    assert batches == [ids, ids[:3], ids[:3], ids[3:]]
    assert [decoded(call)["sentAt"] for call in api.calls] == stamps
    assert len(set(stamps)) == 4
    assert heads == [6, 3, 3]  # the retried half reuses its head
    assert client.stats().delivered == 6
