"""Encoding of values JSON cannot hold."""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import uuid
from decimal import Decimal
from pathlib import PurePosixPath

import pytest

from segment_client._json import dumps


class Color(enum.Enum):
    RED = "red"
    ONE = 1


class Opaque:
    def __str__(self) -> str:
        return "opaque!"


def roundtrip(value: object) -> object:
    return json.loads(dumps({"v": value}))["v"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (Decimal("12.5"), 12.5),
        (Decimal("3"), 3),
        (Decimal("NaN"), None),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Color.RED, "red"),
        (Color.ONE, 1),
        (PurePosixPath("/a/b"), "/a/b"),
        ({3}, [3]),
        ((1, 2), [1, 2]),
        (b"text", "text"),
        (b"\xff\xfe", "//4="),
        (float("nan"), None),
        (float("inf"), None),
        ([1, float("-inf"), {"x": float("nan")}], [1, None, {"x": None}]),
        ("snowman ☃", "snowman ☃"),
    ],
)
def test_conversions(value: object, expected: object) -> None:
    """Awkward values are converted; the output is always valid JSON."""
    assert roundtrip(value) == expected


def test_unknown_values_become_str_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="segment_client"):
        assert roundtrip(Opaque()) == "opaque!"
    assert "Opaque" in caplog.text


def test_non_string_keys() -> None:
    """Keys JSON cannot hold are converted instead of crashing."""
    out = json.loads(dumps({(1, 2): "t", dt.date(2024, 1, 1): "d", 5: "i"}))
    assert out == {"(1, 2)": "t", "2024-01-01": "d", "5": "i"}


def test_compact_utf8() -> None:
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


def test_lone_surrogate_does_not_crash() -> None:
    assert json.loads(dumps({"s": "\ud800"}))["s"] == "?"
