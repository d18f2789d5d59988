"""Fixtures for the integration tests: clients recording into memory."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from segment_client import Client
from segment_client.testing import RecordingTransport

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Recorder:
    """Builds recording clients for an integration and remembers them for cleanup."""

    def __init__(self) -> None:
        self.transport = RecordingTransport()
        self.clients: list[Client] = []

    def __call__(self) -> Client:
        client = Client("test-key", transport=self.transport, flush_at=100)
        self.clients.append(client)
        return client

    def messages(self) -> list[dict[str, object]]:
        """Every message the built clients delivered, after flushing them."""
        for client in self.clients:
            assert client.flush(5)
        return self.transport.messages

    def close(self) -> None:
        for client in self.clients:
            client.close_and_flush(5)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture(scope="session", autouse=True)
def _examples_on_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))
