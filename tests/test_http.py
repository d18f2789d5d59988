"""The HTTP transport against `responses`: URL, headers, auth, body, gzip, retries."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
import requests
import responses

from segment_client import APIError, Client, HTTPTransport, TransportError, __version__

URL = "https://collector.test/v1/batch"
FAST = {"retry_base_delay": 0.0, "retry_max_delay": 0.0}


def body_of(call: Any) -> dict[str, Any]:
    raw = call.request.body
    if call.request.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    return json.loads(raw)  # type: ignore[no-any-return]


def make(**options: Any) -> Client:
    options.setdefault("host", "https://collector.test/")
    return Client("secret-key", **options)


def test_request_shape(api: responses.RequestsMock) -> None:
    """URL, headers, Basic auth with the trailing colon, gzip body, envelope fields."""
    api.post(URL, status=200)
    client = make()
    mid = client.track("u", "E", {"a": 1})
    assert client.close_and_flush(5)
    [call] = api.calls
    headers = call.request.headers
    assert call.request.url == URL
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["User-Agent"] == f"segment-client-python/{__version__}"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"secret-key:").decode()
    assert "X-Retry-Count" not in headers
    body = body_of(call)
    assert body["writeKey"] == "secret-key"
    assert body["sentAt"].endswith("Z")
    assert [m["messageId"] for m in body["batch"]] == [mid]


def test_no_gzip(api: responses.RequestsMock) -> None:
    api.post(URL, status=200)
    client = make(gzip=False)
    client.identify("u", {"x": 1})
    assert client.close_and_flush(5)
    [call] = api.calls
    assert "Content-Encoding" not in call.request.headers
    assert json.loads(call.request.body)["batch"][0]["traits"] == {"x": 1}


def test_503_503_200_delivers_once(api: responses.RequestsMock) -> None:
    """Retries reuse the messageId, count in X-Retry-Count and refresh sentAt."""
    api.post(URL, status=503)
    api.post(URL, status=503)
    api.post(URL, status=200)
    client = make(**FAST)
    mid = client.track("u", "E")
    assert client.close_and_flush(5)
    assert len(api.calls) == 3
    retry_counts = [c.request.headers.get("X-Retry-Count") for c in api.calls]
    assert retry_counts == [None, "1", "2"]
    bodies = [body_of(c) for c in api.calls]
    assert {b["batch"][0]["messageId"] for b in bodies} == {mid}
    assert client.stats().delivered == 1


def test_sent_at_refreshed_per_attempt(api: responses.RequestsMock) -> None:
    api.post(URL, status=500)
    api.post(URL, status=200)
    client = make(retry_base_delay=0.02, retry_max_delay=0.02)
    client.track("u", "E")
    assert client.close_and_flush(5)
    first, second = (body_of(c)["sentAt"] for c in api.calls)
    assert first <= second
    # Different attempt bodies are built anew (sentAt is not frozen with the messages).
    assert api.calls[0].request.body is not api.calls[1].request.body


def test_status_and_retry_after_mapping(api: responses.RequestsMock) -> None:
    api.post(URL, status=429, headers={"Retry-After": "7"}, body="slow down")
    transport = HTTPTransport("k", url=URL)
    with pytest.raises(APIError) as info:
        transport.send([b'{"type":"track"}'])
    assert (info.value.status, info.value.retry_after, info.value.body) == (429, 7.0, "slow down")
    assert info.value.retryable


def test_connection_error_is_transport_error(api: responses.RequestsMock) -> None:
    api.post(URL, body=requests.ConnectionError("refused secret-key"))
    transport = HTTPTransport("secret-key", url=URL)
    with pytest.raises(TransportError) as info:
        transport.send([b"{}"])
    assert "secret-key" not in str(info.value)


def test_host_path_normalisation(api: responses.RequestsMock) -> None:
    api.post("http://127.0.0.1:9/custom/path", status=200)
    client = Client("k", host="http://127.0.0.1:9///", path="/custom/path", sync_mode=True)
    client.page("u", name="Home")
    assert len(api.calls) == 1
    client.close_and_flush(1)
