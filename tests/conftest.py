"""Shared fixtures: a recording transport, a client factory, a `responses` mock, the real
analytics.js, and the leaked-thread guard."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from responses import registries

from segment_client import Client
from segment_client.testing import RecordingTransport

CONSUMER_THREAD = "segment_client.consumer"


@pytest.fixture(autouse=True)
def _no_leaked_consumer_threads() -> Iterator[None]:
    """A consumer thread still alive after a test is a failure of that test."""
    before = {t for t in threading.enumerate() if t.name == CONSUMER_THREAD}
    yield
    leaked = [
        t for t in threading.enumerate()
        if t.name == CONSUMER_THREAD and t not in before and t.is_alive()
    ]
    for thread in leaked:
        thread.join(5)
    still = [t for t in leaked if t.is_alive()]
    assert not still, f"leaked consumer threads: {still}"


@pytest.fixture(name="transport")
def _transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture(name="make_client")
def _make_client(transport: RecordingTransport) -> Iterator[Callable[..., Client]]:
    """Build clients (default: the recording transport); each is closed after the test."""
    clients: list[Client] = []

    def make(write_key: str = "test-key", **options: Any) -> Client:
        options.setdefault("transport", transport)
        client = Client(write_key, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close_and_flush(5)


@pytest.fixture(name="api")
def _api() -> Iterator[responses.RequestsMock]:
    """A `responses` mock answering registered calls in the order they were added."""
    with responses.RequestsMock(registry=registries.OrderedRegistry) as mock:
        yield mock


@pytest.fixture(scope="session")
def analytics_next() -> Path:
    """`node_modules` with the locked @segment/analytics-next (npm ci, cached)."""
    from tests._support import analytics_js  # only the tests that ask pay for it

    try:
        return analytics_js.install()
    except RuntimeError as exc:  # a missing npm fails the tests, it never skips them
        pytest.fail(str(exc))
