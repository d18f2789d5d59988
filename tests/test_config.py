"""Client configuration: defaults, environment, and errors naming the option."""

from __future__ import annotations

import re
from typing import Any

import pytest

from segment_client import Client, ConfigurationError


def test_defaults() -> None:
    client = Client("k")
    assert client.host == "https://api.segment.io"
    assert client.path == "/v1/batch"
    assert (client.flush_at, client.flush_interval, client.max_queue_size) == (100, 0.5, 10_000)
    client.close_and_flush(1)


def test_environment_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "env-key")
    monkeypatch.setenv("SEGMENT_HOST", "http://127.0.0.1:8787/")
    client = Client()
    assert client.host == "http://127.0.0.1:8787"
    explicit = Client("arg-key", host="https://events.eu1.segmentapis.com")
    assert explicit.host == "https://events.eu1.segmentapis.com"
    client.close_and_flush(1)
    explicit.close_and_flush(1)


def test_missing_write_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="write_key"):
        Client()
    with pytest.raises(ConfigurationError, match="write_key"):
        Client("")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"host": "api.segment.io"}, "host"),
        ({"host": "ftp://x"}, "host"),
        ({"host": ""}, "host"),
        ({"path": "v1/batch"}, "path"),
        ({"flush_at": 0}, "flush_at"),
        ({"flush_at": 2501}, "flush_at"),
        ({"flush_at": 1.5}, "flush_at"),
        ({"flush_at": True}, "flush_at"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"max_retries": -1}, "max_retries"),
        ({"request_timeout": -1}, "request_timeout"),
        ({"request_timeout": "10"}, "request_timeout"),
        ({"shutdown_timeout": -0.1}, "shutdown_timeout"),
        ({"gzip": "yes"}, "gzip"),
        ({"sync_mode": 1}, "sync_mode"),
        ({"on_error": "print"}, "on_error"),
        ({"transport": object()}, "transport"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(field)) as info:
        Client("k", **options)
    assert isinstance(info.value, ValueError)


def test_negative_flush_timeout() -> None:
    client = Client("k")
    with pytest.raises(ConfigurationError, match="timeout"):
        client.flush(-1)
    client.close_and_flush(1)


def test_repr_hides_write_key() -> None:
    client = Client("super-secret-key")
    assert "super-secret-key" not in repr(client)
    client.close_and_flush(1)
