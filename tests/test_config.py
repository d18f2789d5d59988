"""Client configuration: defaults, environment, and errors naming the option."""

from __future__ import annotations

import math
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from segment_client import Client, ConfigurationError, TransportError
from segment_client.testing import RecordingTransport


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
        ({"flush_timeout": -1}, "flush_timeout"),
        ({"flush_timeout": math.nan}, "flush_timeout"),
        ({"host": "http://x/v1/batch"}, "path="),
        ({"host": "http://x?a=1"}, "host"),
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


def test_a_host_with_a_path_says_how_to_pass_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        Client("k", host="http://127.0.0.1:8080/v1/batch")
    assert "Client(host='http://127.0.0.1:8080', path='/v1/batch')" in str(info.value)


@pytest.mark.parametrize(
    "options",
    [
        {"integrations": ["All"]},
        {"tracking_plan": {"not": "a plan"}},
        {"tracking_plan": {"rules": []}, "on_violation": "explode"},
        {"on_unplanned": "sometimes", "tracking_plan": {"rules": []}},
    ],
)
def test_a_rejected_client_leaves_nothing_behind(options: dict[str, Any], tmp_path: Path) -> None:
    """Every argument is checked before the spool (files, a thread) is built."""
    spool = tmp_path / "spool"
    threads = threading.active_count()
    with pytest.raises(ConfigurationError):
        Client("k", spool_dir=spool, **options)
    assert not spool.exists()
    assert threading.active_count() == threads


def test_live_options_apply_to_the_next_batch() -> None:
    transport = RecordingTransport()
    client = Client("k", transport=transport, flush_at=100, flush_interval=60)
    client.flush_at = 2
    for _ in range(2):  # two at a time: a backlog would go out in one larger batch
        for _ in range(2):
            client.track("u", "E")
        assert transport.wait_for_messages(len(transport.messages) + 2)
    assert client.flush(5)
    assert [len(batch) for batch in transport.batches] == [2, 2]
    client.send = False
    client.track("u", "E")
    assert client.stats().dropped == {"send_disabled": 1}
    client.flush_timeout = math.inf
    assert client.flush_timeout == math.inf
    with pytest.raises(ConfigurationError, match="flush_at"):
        client.flush_at = 0
    with pytest.raises(ConfigurationError, match="send"):
        client.send = "no"  # type: ignore[assignment]
    client.close_and_flush(5)


@pytest.mark.parametrize(
    "name", ["host", "path", "max_queue_size", "sync_mode", "request_timeout", "gzip"]
)
def test_fixed_options_are_read_only(name: str) -> None:
    client = Client("k", transport=RecordingTransport())
    with pytest.raises(AttributeError, match=f"Client.{name} is fixed"):
        setattr(client, name, getattr(client, name))
    client.close_and_flush(1)


def test_replace_transport_swaps_from_the_next_attempt() -> None:
    first = RecordingTransport(fail_always=TransportError("down"))
    second = RecordingTransport()
    client = Client("k", transport=first, retry_base_delay=0, retry_max_delay=0)
    assert client.replace_transport(second) is first
    client.track("u", "E")
    assert client.close_and_flush(5)
    assert (first.attempts, len(second.messages)) == ([], 1)
    assert second.closed and not first.closed
    with pytest.raises(ConfigurationError, match="transport"):
        client.replace_transport(object())  # type: ignore[arg-type]


def test_flush_is_bounded_by_default() -> None:
    """flush() without a timeout waits flush_timeout at most (here shortened)."""
    client = Client(
        "k", transport=RecordingTransport(fail_always=TransportError("down")),
        flush_timeout=0.2, retry_base_delay=60, retry_max_delay=60,
    )
    client.track("u", "E")
    assert client.flush() is False
    assert client.close_and_flush() is False
    assert client.stats().failed == 1
