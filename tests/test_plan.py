"""Tracking plans: loading (Segment exports, native form, malformed plans), the compiled
JSON Schema subset, and the client's violation and unplanned-event policies."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from segment_client import Client, ConfigurationError, DeliveryError, MessageError
from segment_client._plan import PlanError, TrackingPlanViolation, load_plan
from segment_client.testing import RecordingTransport

PLANS = Path(__file__).parent / "plans"
UTC = dt.timezone.utc

NATIVE: dict[str, Any] = {
    "events": {
        "Order Completed": {
            "properties": {
                "order_id": {"type": "string", "required": True},
                "revenue": {"type": "number", "minimum": 0},
            }
        },
    },
    "identify": {"traits": {"email": {"type": "string", "required": True}}},
    "group": {"traits": {"name": {"type": "string", "required": True}}},
}


def _track(event: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": "u1", "properties": properties}


# -- loading -----------------------------------------------------------------------------


def test_loads_the_segment_public_api_export() -> None:
    plan = load_plan(PLANS / "segment_public_api.json")
    assert sorted(plan.track_rules) == ["Example Event", "Order Completed"]
    assert plan.identify is not None and plan.group is not None
    assert plan.track_rules["Order Completed"].version == 2
    assert plan.track_rules["Order Completed"].description == "A customer finished checkout."
    # COMMON rules and deprecated rules are listed, not enforced (and their unsupported
    # keywords do not stop loading).
    assert len(plan.ignored) == 2
    assert any("COMMON" in item for item in plan.ignored)
    assert any("Old Event" in item and "deprecated" in item for item in plan.ignored)
    assert plan.check(_track("Order Completed", {"order_id": "o1", "revenue": 3})) == []
    assert plan.check(_track("Order Completed", {"revenue": -1})) == [
        "track 'Order Completed' v2: properties.order_id: required property is missing",
        "track 'Order Completed' v2: properties.revenue: -1 breaks minimum 0",
    ]


def test_loads_the_config_api_typewriter_export() -> None:
    plan = load_plan(str(PLANS / "typewriter_plan.json"))
    assert plan.name == "Acme Web"
    assert sorted(plan.track_rules) == ["Empty Event", "Video Played", "identify"]
    assert plan.group is None and plan.identify is not None
    assert plan.ignored == ["rules.global: common rules are not enforced client-side"]
    assert plan.check(_track("Video Played", {"video_id": "v", "extra": 1})) == [
        "track 'Video Played' v4: properties.extra: property is not in the plan "
        "(additionalProperties is false)"
    ]


def test_the_native_form_and_a_segment_export_agree() -> None:
    native = load_plan(NATIVE)
    exported = load_plan({"rules": [
        {"type": "TRACK", "key": "Order Completed", "jsonSchema": {
            "type": "object", "required": ["properties"],
            "properties": {"properties": {
                "type": "object", "required": ["order_id"],
                "properties": {"order_id": {"type": "string"},
                               "revenue": {"type": "number", "minimum": 0}},
            }},
        }},
        {"type": "IDENTIFY", "jsonSchema": {"properties": {"traits": {
            "type": "object", "required": ["email"], "properties": {"email": {"type": "string"}},
        }}}},
    ]})
    messages = [
        _track("Order Completed", {"order_id": "o", "revenue": 1}),
        _track("Order Completed", {"order_id": 5, "revenue": -2}),
        _track("Order Completed", {}),
        {"type": "identify", "userId": "u", "traits": {}},
        {"type": "identify", "userId": "u", "traits": {"email": 3}},
    ]
    for message in messages:
        assert [v.split(": ", 1)[1] for v in native.check(message)] == [
            v.split(": ", 1)[1] for v in exported.check(message)
        ]
    assert native.check(messages[1]) == [
        "track 'Order Completed': properties.order_id: expected string, got integer 5",
        "track 'Order Completed': properties.revenue: -2 breaks minimum 0",
    ]


def test_native_shorthands_nest() -> None:
    plan = load_plan(PLANS / "native_shop.json")
    rule = plan.track_rules["Order Completed"]
    assert rule.version == 3
    good = {"order_id": "o1", "revenue": 10, "products": [{"sku": "ABC-1", "price": 2}],
            "shipping": {"method": "express", "address": {"country": "DE"}}}
    assert plan.check(_track("Order Completed", good)) == []
    bad = {"order_id": "", "revenue": 10, "currency": "GBP",
           "products": [{"sku": "ABC-1", "price": 2}, {"sku": "abc", "price": 0, "x": 1}],
           "shipping": {"address": {"country": "Germany", "city": 7}}}
    assert [v.split(": ", 1)[1] for v in plan.check(_track("Order Completed", bad))] == [
        "properties.order_id: shorter than minLength 1",
        'properties.currency: \'GBP\' is not one of ["USD", "EUR"]',
        "properties.products[1].sku: 'abc' does not match pattern '^[A-Z]{3}-[0-9]+$'",
        "properties.products[1].price: 0 breaks exclusiveMinimum 0",
        "properties.products[1].x: property is not in the plan (additionalProperties is false)",
        "properties.shipping.method: required property is missing",
        "properties.shipping.address.country: longer than maxLength 2",
        "properties.shipping.address.city: expected string, got integer 7",
    ]


def test_unplanned_events_are_reported_by_check() -> None:
    plan = load_plan(NATIVE)
    assert plan.check(_track("Nope", {})) == [
        "track 'Nope': event: event is not in the tracking plan"
    ]
    assert plan.check({"type": "page", "name": "Home", "properties": {"x": 1}}) == []


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        ({"rules": [{"type": "TRACK", "key": "A", "jsonSchema": {"properties": {"properties": {
            "properties": {"x": {"anyOf": [{"type": "string"}]}}}}}}]},
         "rules[0] (TRACK 'A'): schema at properties.x: keyword 'anyOf' is not supported"),
        ({"rules": [{"type": "TRACK", "key": "A", "jsonSchema": {"$ref": "#/x"}}]},
         "keyword '$ref' is not supported"),
        ({"events": {"A": {"properties": {"x": {"type": "text"}}}}},
         "rule track 'A': schema at properties.x: unknown type 'text'"),
        ({"events": {"A": {"properties": {"x": {"type": "string", "pattern": "("}}}}},
         "rule track 'A': schema at properties.x: 'pattern' '(' is not a valid regex"),
        ({"events": {"A": {"properties": {"x": {"type": "string", "minLength": -1}}}}},
         "'minLength' must be a non-negative integer"),
        ({"events": {"A": {"properties": {"x": {"enum": []}}}}}, "'enum' must be a non-empty"),
        ({"events": {"A": {"props": {}}}}, "rule track 'A': unknown key 'props'"),
        ({"events": {"A": {"properties": {"x": 5}}}}, "rule track 'A': properties.x"),
        ({"rules": [{"type": "TRACK", "jsonSchema": {}}]}, "a TRACK rule needs 'key'"),
        ({"rules": [{"type": "TRACK", "key": "A"}, {"type": "TRACK", "key": "A"}]},
         "event 'A' has more than one rule"),
        ({"rules": [{"type": "TRACK", "key": "A", "version": "two"}]}, "'version' must be"),
        ({"rules": [{"type": "TRACK", "key": "A", "jsonSchema": "{bad"}]},
         "jsonSchema is not valid JSON"),
        ({"rules": ["TRACK"]}, "rules[0]: a rule must be an object"),
        ({"rules": {"events": [{"rules": {}}]}}, "rules.events[0]: 'name'"),
        ({"rules": {"events": [{"name": "A", "rules": {"required": "x"}}]}},
         "rule rules.events[0] ('A'): schema at (root): 'required' must be a list"),
        ({"tracks": []}, "not a tracking plan"),
    ],
)
def test_malformed_plans_name_the_rule(plan: dict[str, Any], expected: str) -> None:
    with pytest.raises(PlanError) as info:
        load_plan(plan)
    assert expected in str(info.value)
    assert isinstance(info.value, ConfigurationError)


def test_unreadable_plan_files(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read tracking plan"):
        load_plan(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(PlanError, match=r"broken\.json.*is not valid JSON"):
        load_plan(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[]", encoding="utf-8")
    with pytest.raises(PlanError, match="must be a JSON object"):
        load_plan(listed)


# -- the schema subset -------------------------------------------------------------------


def _problems(schema: dict[str, Any], value: Any) -> list[str]:
    plan = load_plan({"rules": [{"type": "TRACK", "key": "E", "jsonSchema": {
        "properties": {"properties": {"properties": {"v": schema}}}}}]})
    return [v.split(": ", 2)[2] for v in plan.check(_track("E", {"v": value}))]


#: (schema, value, the problem found or None); tests/test_plan_codegen.py runs these too.
SCHEMA_CASES: list[tuple[Any, Any, str | None]] = [
    ({"type": "integer"}, 3, None),
    ({"type": "integer"}, 3.0, None),
    ({"type": "integer"}, 3.5, "expected integer, got number 3.5"),
    ({"type": "integer"}, True, "expected integer, got boolean True"),
    ({"type": "number"}, 2, None),
    ({"type": "number"}, Decimal("2.5"), None),
    ({"type": "number"}, "2", "expected number, got string '2'"),
    ({"type": ["string", "null"]}, None, None),
    ({"type": "boolean"}, 0, "expected boolean, got integer 0"),
    ({"type": "array", "items": {"type": "integer"}}, (1, 2), None),
    ({"type": "array", "items": {"type": "integer"}}, [1, "x"], "expected integer"),
    ({"type": "array", "minItems": 2}, [1], "fewer than minItems 2"),
    ({"type": "array", "maxItems": 1}, [1, 2], "more than maxItems 1"),
    ({"type": "object"}, {"a": 1}, None),
    ({"type": "object"}, [], "expected object, got array"),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, {"a": "x"},
     "expected integer, got string 'x'"),
    ({"enum": ["a", 1]}, 1.0, None),
    ({"enum": [1]}, True, "True is not one of [1]"),
    ({"const": "x"}, "y", "'y' is not one of [\"x\"]"),
    ({"type": "string", "pattern": "^a"}, "ba", "'ba' does not match pattern '^a'"),
    ({"type": "string", "pattern": "b"}, "abc", None),  # JSON Schema patterns search
    ({"type": "string", "maxLength": 2}, "abc", "longer than maxLength 2"),
    ({"type": "number", "maximum": 5}, 6, "6 breaks maximum 5"),
    ({"type": "number", "exclusiveMaximum": 5}, 5, "5 breaks exclusiveMaximum 5"),
    ({"type": "string", "format": "date-time"}, "2024-05-01T10:00:00.123Z", None),
    ({"type": "string", "format": "date-time"}, "2024-05-01T10:00:00+02:00", None),
    ({"type": "string", "format": "date-time"}, "2024-05-01", "is not a valid date-time"),
    ({"type": "string", "format": "date-time"}, dt.datetime(2024, 5, 1, tzinfo=UTC), None),
    ({"type": "string", "format": "date-time"}, dt.date(2024, 5, 1),
     "expected a date-time, got date"),
    ({"type": "string", "format": "date"}, "2024-05-01", None),
    ({"type": "string", "format": "email"}, "not checked", None),
    ({"type": "string"}, object(), "expected string, got object"),
    ({"description": "anything goes", "key": "v"}, object(), None),
    ({"enum": [1, 2]}, 10**400, "is not one of [1, 2]"),  # past float range
    ({"enum": [1, 2]}, 2.0, None),
]


@pytest.mark.parametrize(("schema", "value", "problem"), SCHEMA_CASES)
def test_schema_subset(schema: dict[str, Any], value: Any, problem: str | None) -> None:
    found = _problems(schema, value)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0], found


# -- client policies ---------------------------------------------------------------------


class _Hook:
    def __init__(self) -> None:
        self.calls: list[tuple[TrackingPlanViolation, dict[str, Any]]] = []

    def __call__(self, error: TrackingPlanViolation, message: dict[str, Any]) -> None:
        self.calls.append((error, message))


def _send_mix(client: Client) -> None:
    client.track("u1", "Order Completed", {"order_id": "o1", "revenue": 5})  # valid
    client.track("u1", "Order Completed", {"revenue": -1})  # two violations
    client.identify("u1", {"email": 42})  # one violation
    client.group("u1", "g1", {"name": "Acme"})  # valid
    client.page("u1", name="Home")  # not validated


def test_report_policy_sends_and_reports(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    hook = _Hook()
    client = make_client(tracking_plan=NATIVE, on_plan_violation=hook)
    _send_mix(client)
    assert client.flush(5)
    assert len(transport.messages) == 5
    stats = client.stats()
    assert (stats.violations, stats.unplanned, stats.dropped) == (2, 0, {})
    assert [error.event for error, _ in hook.calls] == ["Order Completed", "identify"]
    first = hook.calls[0][0]
    assert first.rule == "track 'Order Completed'"
    assert [v.path for v in first.violations] == ["properties.order_id", "properties.revenue"]
    assert hook.calls[1][1]["traits"] == {"email": 42}


def test_drop_policy_reports_and_does_not_send(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    hook = _Hook()
    errors: list[tuple[DeliveryError, list[dict[str, Any]]]] = []
    client = make_client(
        tracking_plan=NATIVE, on_violation="drop", on_plan_violation=hook,
        on_error=lambda e, m: errors.append((e, m)),
    )
    _send_mix(client)
    assert client.flush(5)
    assert [m["type"] for m in transport.messages] == ["track", "group", "page"]
    stats = client.stats()
    assert stats.dropped == {"tracking_plan": 2}
    assert stats.violations == 2 and stats.delivered == 3
    assert len(hook.calls) == 2 and len(errors) == 2
    assert isinstance(errors[0][0].__cause__, TrackingPlanViolation)
    assert "properties.order_id" in str(errors[0][0])


def test_raise_policy_raises_from_the_call(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    hook = _Hook()
    client = make_client(tracking_plan=NATIVE, on_violation="raise", on_plan_violation=hook)
    client.track("u1", "Order Completed", {"order_id": "o1"})
    with pytest.raises(TrackingPlanViolation) as info:
        client.track("u1", "Order Completed", {"order_id": 7, "revenue": 1})
    error = info.value
    assert isinstance(error, MessageError)
    assert (error.event, error.path, error.rule) == (
        "Order Completed", "properties.order_id", "track 'Order Completed'"
    )
    assert "expected string, got integer 7" in str(error)
    with pytest.raises(TrackingPlanViolation, match=r"traits\.name"):
        client.group("u1", "g1", {})
    assert client.flush(5)
    assert len(transport.messages) == 1
    stats = client.stats()
    assert stats.violations == 2 and stats.dropped == {}
    assert hook.calls == []


@pytest.mark.parametrize(
    ("policy", "delivered", "dropped", "hook_calls"),
    [("allow", 3, {}, 0), ("report", 3, {}, 2), ("drop", 1, {"unplanned": 2}, 2)],
)
def test_unplanned_event_policies(
    make_client: Callable[..., Client], transport: RecordingTransport,
    policy: str, delivered: int, dropped: dict[str, int], hook_calls: int,
) -> None:
    hook = _Hook()
    client = make_client(tracking_plan=NATIVE, on_unplanned=policy, on_plan_violation=hook)
    client.track("u1", "Order Completed", {"order_id": "o1"})
    client.track("u1", "Mystery")
    client.track("u1", "Other Mystery")
    assert client.flush(5)
    assert len(transport.messages) == delivered
    stats = client.stats()
    assert stats.unplanned == 2 and stats.violations == 0 and stats.dropped == dropped
    assert len(hook.calls) == hook_calls
    if hook_calls:
        assert hook.calls[0][0].rule is None and hook.calls[0][0].path == "event"


def test_the_plan_sees_the_message_after_caller_middleware(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    client = make_client(tracking_plan=NATIVE, on_violation="raise")

    def fill(message: dict[str, Any]) -> dict[str, Any]:
        message["properties"].setdefault("order_id", "filled")
        return message

    client.add_middleware(fill)
    client.track("u1", "Order Completed", {})
    assert client.flush(5)
    assert transport.messages[0]["properties"] == {"order_id": "filled"}


def test_a_raising_hook_does_not_break_the_call(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    def bad_hook(error: TrackingPlanViolation, message: dict[str, Any]) -> None:
        raise RuntimeError("hook bug")

    client = make_client(tracking_plan=NATIVE, on_plan_violation=bad_hook)
    client.track("u1", "Order Completed", {})
    assert client.flush(5)
    assert len(transport.messages) == 1 and client.stats().violations == 1


def test_plan_options_are_checked(tmp_path: Path) -> None:
    transport = RecordingTransport()
    with pytest.raises(ConfigurationError, match="on_violation"):
        Client("k", transport=transport, tracking_plan=NATIVE, on_violation="warn")
    with pytest.raises(ConfigurationError, match="on_unplanned"):
        Client("k", transport=transport, tracking_plan=NATIVE, on_unplanned="block")
    with pytest.raises(ConfigurationError, match="on_plan_violation"):
        Client("k", transport=transport, tracking_plan=NATIVE, on_plan_violation=3)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="cannot read"):
        Client("k", transport=transport, tracking_plan=str(tmp_path / "none.json"))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(NATIVE), encoding="utf-8")
    client = Client("k", transport=transport, tracking_plan=path, on_violation="raise")
    try:
        with pytest.raises(TrackingPlanViolation):
            client.identify("u1", {})
    finally:
        client.close_and_flush(5)
