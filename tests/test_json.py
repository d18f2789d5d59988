"""Encoding of values JSON cannot hold."""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import PurePosixPath

import pytest

from segment_client import Client, MessageError, MessageTooLargeError, _json
from segment_client._json import MAX_DEPTH, dumps, largest_field


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


# -- structures JSON cannot hold: cycles and depth (MessageError naming the path) --------



@pytest.fixture(params=["orjson", "stdlib"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Both encoders: orjson (the fast extra) when installed, and the stdlib one."""
    if request.param == "orjson":
        if _json._fast_dumps is None:
            pytest.skip("orjson is not installed")
    else:
        monkeypatch.setattr(_json, "_fast_dumps", None)
    yield request.param


def nested(depth: int, leaf: object = 1) -> dict[str, object]:
    """A message `depth` levels deep (the message itself is level 1)."""
    value: object = leaf
    for _ in range(depth):
        value = {"a": value}
    assert isinstance(value, dict)
    return value


def test_a_circular_dict_is_a_message_error_naming_the_path(encoder: str) -> None:
    loop: dict[str, object] = {"name": "x"}
    loop["parent"] = loop
    with Client("k", send=False) as client, pytest.raises(MessageError) as raised:
        client.track("user-1", "Saved", {"node": {"tree": loop}})
    assert str(raised.value) == (
        "properties.node.tree.parent refers back to properties.node.tree "
        "(a circular reference)"
    )


def test_a_circular_list_is_a_message_error(encoder: str) -> None:
    items: list[object] = [1]
    items.append(items)
    with pytest.raises(MessageError, match=r"^items\[1\] refers back to items "):
        dumps({"items": items})


def test_a_message_referring_to_itself(encoder: str) -> None:
    message: dict[str, object] = {}
    message["self"] = message
    with pytest.raises(MessageError, match=r"^self refers back to the message "):
        dumps(message)


def test_shared_values_are_not_cycles(encoder: str) -> None:
    shared = {"x": [1, 2]}
    assert json.loads(dumps({"a": shared, "b": [shared, shared]}))["b"][1] == shared


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH])
def test_nesting_up_to_the_limit_is_accepted(encoder: str, depth: int) -> None:
    assert json.loads(dumps(nested(depth))) == nested(depth)
    assert json.loads(dumps(nested(depth - 1, leaf=[]))) == nested(depth - 1, leaf=[])


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 5000])
def test_nesting_past_the_limit_is_a_message_error(encoder: str, depth: int) -> None:
    """Past the limit, past orjson's own (254) and past the interpreter's recursion
    limit: always the same MessageError, never RecursionError."""
    with pytest.raises(MessageError) as raised:
        dumps(nested(depth))
    text = str(raised.value)
    assert text.startswith("a.a.a.")
    assert text.endswith(
        f" is nested {MAX_DEPTH + 1} levels deep, over the limit of {MAX_DEPTH} "
        "(objects and arrays, the message being level 1)"
    )
    assert len(text) < 250  # the path is shortened in the middle


def test_deep_lists_and_nan_together(encoder: str) -> None:
    value: object = float("nan")
    for _ in range(MAX_DEPTH + 1):
        value = [value]
    with pytest.raises(MessageError, match=r"^\[0\]\[0\]"):
        dumps(value)
    assert json.loads(dumps({"v": [[float("nan")]]})) == {"v": [[None]]}


def test_many_brackets_without_depth_are_accepted(encoder: str) -> None:
    """More than MAX_DEPTH brackets in all (many objects, brackets in strings, escaped
    quotes) is not depth."""
    products = [{"sku": f"s-{i}", "name": 'say "[{hi}]"\\', "tags": []} for i in range(150)]
    message = {"properties": {"products": products, "text": "[[[{{{" * 40}}
    assert json.loads(dumps(message)) == message


def test_bracket_heavy_strings_do_not_hide_depth(encoder: str) -> None:
    message = nested(MAX_DEPTH + 1, leaf="]]]}}}" * 40)
    message["pad"] = ['"]}' * 3] * 120
    with pytest.raises(MessageError, match="nested 101 levels deep"):
        dumps(message)


def test_unknown_values_are_named_by_path(
    encoder: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="segment_client"):
        data = dumps({"properties": {"order": {"items": [1, Opaque()]}}})
    assert json.loads(data) == {"properties": {"order": {"items": [1, "opaque!"]}}}
    assert [r.getMessage() for r in caplog.records] == [
        "properties.order.items[1] is a Opaque, which is not "
        "JSON-serialisable; sent as str()"
    ]


def test_the_size_error_names_the_largest_field() -> None:
    with Client("k", send=False) as client, pytest.raises(MessageTooLargeError) as raised:
        client.track(
            "user-1", "Uploaded",
            {"small": "x" * 100, "file": {"name": "a.txt", "body": "y" * 40_000}},
        )
    assert str(raised.value).endswith(
        "; the largest field is properties.file.body (40002 bytes)"
    )
    assert raised.value.field == "properties.file.body"  # type: ignore[attr-defined]


def test_largest_field_stops_where_the_bytes_spread_out() -> None:
    """Many similar items: the list is named, not one item."""
    message = {"traits": {"items": [{"t": "q" * 100} for _ in range(50)], "id": 1}}
    path, size = largest_field(message)
    assert path == "traits.items"
    assert size == len(dumps(message["traits"]["items"]))
