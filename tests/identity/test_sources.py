"""Source-library marking of stored messages, from context.library."""

from __future__ import annotations

from typing import Any

import pytest

from segment_client import Client
from segment_client.collector._sources import SOURCE_KINDS, Source, source_of
from segment_client.testing import RecordingTransport


@pytest.mark.parametrize(
    ("library", "kind"),
    [
        ({"name": "analytics.js", "version": "next-1.84.3"}, "browser"),
        ({"name": "analytics-next"}, "browser"),
        ({"name": "segment-client-python", "version": "1.0"}, "segment-client"),
        ({"name": "analytics-python", "version": "2.4.0"}, "server"),
        ({"name": "@segment/analytics-node"}, "server"),
        ({"name": "analytics-ruby"}, "server"),
        ({"name": "analytics-kotlin"}, "mobile"),
        ({"name": "my-own-sender"}, "other"),
        ({"version": "1"}, "unknown"),
        ("analytics.js", "unknown"),
        (None, "unknown"),
    ],
)
def test_kinds(library: Any, kind: str) -> None:
    message: dict[str, Any] = {"type": "track"}
    if library is not None:
        message["context"] = {"library": library}
    assert source_of(message).kind == kind
    assert kind in SOURCE_KINDS


def test_never_raises_on_odd_messages() -> None:
    assert source_of({"context": "x"}) == Source("unknown", None, None)
    assert source_of({"context": {"library": {"name": "x", "version": 3}}}).version is None


def test_segment_client_messages_are_marked_as_such() -> None:
    transport = RecordingTransport()
    with Client("key", transport=transport) as client:
        client.track("u1", "Signed Up")
        client.flush()
    [message] = transport.messages
    assert source_of(message).kind == "segment-client"
