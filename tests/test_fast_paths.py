"""The optimised hot-path pieces keep their contracts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal

import pytest

from segment_client import _json
from segment_client._messages import build_track, new_message_id


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
