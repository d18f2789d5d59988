"""Routing: the integrations object with Segment's semantics, destination filters, the file.

Every rule has a case that fails without it (the ids name the rule).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from segment_client._cli import main as cli_main
from segment_client.collector._routing import (
    DestinationsError,
    Router,
    load_destinations,
    parse_destinations,
)

BASE = {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "m-1",
        "properties": {"plan": "pro", "revenue": 80, "email": "ada@acme.example",
                       "coupon": None},
        "context": {"ip": "203.0.113.9", "library": {"name": "x"}},
        "integrations": {}}
THREE = {"destinations": [{"name": "Amplitude"}, {"name": "Mixpanel"},
                          {"name": "Google Analytics"}]}


def message(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(BASE))
    data.update(changes)
    return data


def delivered(config: dict[str, Any], msg: dict[str, Any]) -> list[str]:
    return Router(parse_destinations(config)).route(msg).delivered


INTEGRATIONS_CASES = [
    # (id, integrations, expected delivered)
    ("default-all-on", {}, ["Amplitude", "Mixpanel", "Google Analytics"]),
    ("named-false-is-off", {"Mixpanel": False}, ["Amplitude", "Google Analytics"]),
    ("all-false-only-named", {"All": False, "Mixpanel": True}, ["Mixpanel"]),
    ("all-false-options-object-counts-as-on",
     {"All": False, "Google Analytics": {"clientId": "123"}}, ["Google Analytics"]),
    ("all-false-empty-options-object-on", {"All": False, "Amplitude": {}}, ["Amplitude"]),
    ("all-true-explicit", {"All": True, "Amplitude": False}, ["Mixpanel", "Google Analytics"]),
    ("keys-are-case-sensitive", {"All": False, "mixpanel": True}, []),
    ("null-is-not-named", {"All": False, "Mixpanel": None}, []),
    ("segment-io-false-reaches-no-one", {"Segment.io": False, "Mixpanel": True}, []),
    ("all-false-does-not-stop-segment-io", {"All": False}, []),
    ("integrations-not-an-object-is-ignored", "nope", ["Amplitude", "Mixpanel",
                                                       "Google Analytics"]),
]


@pytest.mark.parametrize(("integrations", "expected"),
                         [c[1:] for c in INTEGRATIONS_CASES],
                         ids=[c[0] for c in INTEGRATIONS_CASES])
def test_integrations_object(integrations: Any, expected: list[str]) -> None:
    assert delivered(THREE, message(integrations=integrations)) == expected


def test_segment_io_false_and_all_false_differ_for_segment_itself() -> None:
    router = Router(parse_destinations(THREE))
    off = router.route(message(integrations={"Segment.io": False}))
    assert off.segment is False
    assert {d.code for d in off.decisions} == {"segment_off"}
    all_off = router.route(message(integrations={"All": False}))
    assert all_off.segment is True
    assert {d.code for d in all_off.decisions} == {"all_false"}


def test_reasons_name_the_rule() -> None:
    router = Router(parse_destinations(THREE))
    routing = router.route(message(integrations={"Mixpanel": False,
                                                 "Google Analytics": {"x": 1}, "Amplitud": 1}))
    codes = {d.destination: d.code for d in routing.decisions}
    assert codes == {"Amplitude": "default", "Mixpanel": "integrations_false",
                     "Google Analytics": "options"}
    assert routing.unknown == ("Amplitud",)
    assert "'Mixpanel'" in routing.decisions[1].reason
    named = router.route(message(integrations={"Amplitude": True}))
    assert named.decisions[0].code == "named"
    assert named.decisions[0].reason == "integrations['Amplitude'] is true"


def one(filters: list[dict[str, Any]], enabled: bool = True) -> dict[str, Any]:
    return {"destinations": [{"name": "D", "enabled": enabled, "filters": filters}]}


FILTER_CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # (id, config, message changes, delivered?)
    ("no-filters", one([]), {}, True),
    ("disabled-destination", one([], enabled=False), {}, False),
    ("disabled-even-when-named", one([], enabled=False), {"integrations": {"D": True}}, False),
    ("drop-all", one([{"action": "drop"}]), {}, False),
    ("drop-by-event-hit", one([{"action": "drop", "match": {"event": "Order Completed"}}]),
     {}, False),
    ("drop-by-event-miss", one([{"action": "drop", "match": {"event": "Signed Up"}}]), {}, True),
    ("drop-by-event-list", one([{"action": "drop", "match": {"event": ["A", "Order Completed"]}}]),
     {}, False),
    ("event-only-matches-tracks",
     one([{"action": "drop", "match": {"event": "Order Completed"}}]),
     {"type": "page", "name": "Order Completed"}, True),
    ("drop-by-type-hit", one([{"action": "drop", "match": {"type": "identify"}}]),
     {"type": "identify"}, False),
    ("drop-by-type-miss", one([{"action": "drop", "match": {"type": "identify"}}]), {}, True),
    ("drop-eq", one([{"action": "drop", "match": {"where": [
        {"field": "properties.plan", "op": "eq", "value": "pro"}]}}]), {}, False),
    ("drop-eq-default-op", one([{"action": "drop", "match": {"where": [
        {"field": "properties.plan", "value": "free"}]}}]), {}, True),
    ("drop-ne", one([{"action": "drop", "match": {"where": [
        {"field": "properties.plan", "op": "ne", "value": "free"}]}}]), {}, False),
    ("drop-in", one([{"action": "drop", "match": {"where": [
        {"field": "properties.plan", "op": "in", "value": ["team", "pro"]}]}}]), {}, False),
    ("drop-not-in", one([{"action": "drop", "match": {"where": [
        {"field": "properties.plan", "op": "not_in", "value": ["team", "pro"]}]}}]), {}, True),
    ("drop-gt", one([{"action": "drop", "match": {"where": [
        {"field": "properties.revenue", "op": "gt", "value": 79}]}}]), {}, False),
    ("drop-gte-edge", one([{"action": "drop", "match": {"where": [
        {"field": "properties.revenue", "op": "gte", "value": 80}]}}]), {}, False),
    ("drop-lt-miss", one([{"action": "drop", "match": {"where": [
        {"field": "properties.revenue", "op": "lt", "value": 80}]}}]), {}, True),
    ("drop-lte-edge", one([{"action": "drop", "match": {"where": [
        {"field": "properties.revenue", "op": "lte", "value": 80}]}}]), {}, False),
    ("compare-string-to-number-never-holds", one([{"action": "drop", "match": {"where": [
        {"field": "properties.plan", "op": "gt", "value": 1}]}}]), {}, True),
    ("true-is-not-1", one([{"action": "drop", "match": {"where": [
        {"field": "properties.flag", "op": "eq", "value": 1}]}}]),
     {"properties": {"flag": True}}, True),
    ("1-is-1.0", one([{"action": "drop", "match": {"where": [
        {"field": "properties.revenue", "op": "eq", "value": 80.0}]}}]), {}, False),
    ("drop-exists", one([{"action": "drop", "match": {"where": [
        {"field": "properties.email", "op": "exists"}]}}]), {}, False),
    ("null-does-not-exist", one([{"action": "drop", "match": {"where": [
        {"field": "properties.coupon", "op": "exists"}]}}]), {}, True),
    ("drop-missing", one([{"action": "drop", "match": {"where": [
        {"field": "properties.sku", "op": "missing"}]}}]), {}, False),
    ("drop-contains", one([{"action": "drop", "match": {"where": [
        {"field": "properties.email", "op": "contains", "value": "@acme"}]}}]), {}, False),
    ("drop-matches-glob", one([{"action": "drop", "match": {"where": [
        {"field": "properties.email", "op": "matches", "value": "*@acme.example"}]}}]),
     {}, False),
    ("matches-is-case-sensitive", one([{"action": "drop", "match": {"where": [
        {"field": "properties.email", "op": "matches", "value": "*@ACME.example"}]}}]),
     {}, True),
    ("missing-field-eq-does-not-hold", one([{"action": "drop", "match": {"where": [
        {"field": "properties.nope", "op": "eq", "value": "x"}]}}]), {}, True),
    ("missing-field-ne-holds", one([{"action": "drop", "match": {"where": [
        {"field": "properties.nope", "op": "ne", "value": "x"}]}}]), {}, False),
    ("nested-path", one([{"action": "drop", "match": {"where": [
        {"field": "context.library.name", "value": "x"}]}}]), {}, False),
    ("all-conditions-must-hold", one([{"action": "drop", "match": {
        "event": "Order Completed", "where": [{"field": "properties.plan", "value": "free"}]}}]),
     {}, True),
    ("allow-only-hit", one([{"action": "allow", "match": {"type": "track"}}]), {}, True),
    ("allow-only-miss", one([{"action": "allow", "match": {"event": "Signed Up"}}]), {}, False),
    ("first-drop-decides-order", one([
        {"action": "allow", "match": {"type": "track"}},
        {"action": "drop", "match": {"event": "Order Completed"}}]), {}, False),
    ("sample-0-drops", one([{"action": "sample", "percent": 0}]), {}, False),
    ("sample-100-keeps", one([{"action": "sample", "percent": 100}]), {}, True),
    ("sample-only-matching", one([{"action": "sample", "percent": 0,
                                   "match": {"event": "Signed Up"}}]), {}, True),
    ("drop-beats-named-integration", one([{"action": "drop"}]),
     {"integrations": {"D": True}}, False),
]


@pytest.mark.parametrize(("config", "changes", "expected"),
                         [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES])
def test_filters(config: dict[str, Any], changes: dict[str, Any], expected: bool) -> None:
    assert delivered(config, message(**changes)) == (["D"] if expected else [])


def test_sample_is_deterministic_and_near_the_percentage() -> None:
    router = Router(parse_destinations(one([{"action": "sample", "percent": 25}])))
    kept = [router.route(message(messageId=f"m-{i}")).delivered == ["D"] for i in range(2000)]
    again = [router.route(message(messageId=f"m-{i}")).delivered == ["D"] for i in range(2000)]
    assert kept == again
    assert 400 < sum(kept) < 600  # 25% of 2000 = 500
    skipped = router.route(message(messageId=f"m-{kept.index(False)}")).decisions[0]
    assert (skipped.code, skipped.reason) == (
        "sampled_out", "sampled out by filter '#1 sample' (keeps 25% by messageId)")


def test_sample_by_user_keeps_all_or_none_of_a_users_messages() -> None:
    router = Router(parse_destinations(one([{"action": "sample", "percent": 50,
                                             "by": "userId"}])))
    for user in range(40):
        outcomes = {bool(router.route(message(userId=f"u{user}", messageId=f"{user}-{i}"))
                         .delivered) for i in range(10)}
        assert len(outcomes) == 1
    users_kept = sum(bool(router.route(message(userId=f"u{u}")).delivered) for u in range(400))
    assert 140 < users_kept < 260


def test_drop_and_allow_properties_change_what_the_destination_gets() -> None:
    config = one([
        {"action": "drop_properties", "fields": ["properties.email", "context.ip"]},
        {"action": "allow_properties", "match": {"event": "Order Completed"},
         "fields": ["properties.revenue", "properties.email"]},
    ])
    router = Router(parse_destinations(config))
    msg = message()
    routing = router.route(msg)
    decision = routing.decisions[0]
    assert decision.delivered
    assert decision.removed == ("properties.plan", "properties.email", "properties.coupon",
                                "context.ip")
    assert router.apply("D", msg)["properties"] == {"revenue": 80}
    assert msg["properties"]["email"] == "ada@acme.example"  # the original is untouched
    other = router.route(message(event="Signed Up"))
    assert other.decisions[0].removed == ("properties.email", "context.ip")
    with pytest.raises(KeyError):
        router.apply("nope", msg)


ERROR_CASES = [
    ("not-object", [], "expected an object with a `destinations` list"),
    ("unknown-top", {"destination": []}, "unknown key 'destination'"),
    ("list", {"destinations": {}}, "destinations: expected a list"),
    ("no-name", {"destinations": [{}]}, "destinations[0].name: expected a non-empty string"),
    ("reserved", {"destinations": [{"name": "All"}]}, "destinations[0].name: 'All' is reserved"),
    ("twice", {"destinations": [{"name": "A"}, {"name": "A"}]},
     "destinations[1].name: 'A' is named twice"),
    ("enabled", {"destinations": [{"name": "A", "enabled": "yes"}]},
     "destinations[0].enabled: expected true or false"),
    ("action", one([{"action": "block"}]), "destinations[0].filters[0].action: expected one of"),
    ("percent", one([{"action": "sample", "percent": 150}]),
     "destinations[0].filters[0].percent: expected a number from 0 to 100, got 150"),
    ("percent-missing", one([{"action": "sample"}]), "percent: expected a number"),
    ("fields-root", one([{"action": "drop_properties", "fields": ["userId"]}]),
     "fields: 'userId' must name a field inside properties, context, traits"),
    ("fields-on-drop", one([{"action": "drop", "fields": ["properties.a"]}]),
     "filters[0]: unknown key 'fields'"),
    ("type", one([{"action": "drop", "match": {"type": "Track"}}]),
     "match.type: expected one of identify, track"),
    ("op", one([{"action": "drop", "match": {"where": [{"field": "a", "op": "=="}]}}]),
     "where[0].op: expected one of"),
    ("value-needed", one([{"action": "drop", "match": {"where": [{"field": "a"}]}}]),
     "where[0].value: eq needs a value"),
    ("in-list", one([{"action": "drop", "match": {"where": [{"field": "a", "op": "in",
                                                           "value": "x"}]}}]),
     "in needs a list"),
    ("exists-no-value", one([{"action": "drop", "match": {"where": [
        {"field": "a", "op": "exists", "value": 1}]}}]), "exists takes no value"),
    ("field-path", one([{"action": "drop", "match": {"where": [{"field": "a..b",
                                                              "value": 1}]}}]),
     "where[0].field: expected a dotted path"),
]


@pytest.mark.parametrize(("data", "text"), [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_bad_files_name_the_field(data: Any, text: str) -> None:
    with pytest.raises(DestinationsError) as info:
        parse_destinations(data)
    assert text in str(info.value)


TOML = """
[[destinations]]
name = "Amplitude"

  [[destinations.filters]]
  name = "no internal traffic"
  action = "drop"
  match = { where = [{ field = "properties.email", op = "matches", value = "*@acme.example" }] }

[[destinations]]
name = "Mixpanel"
enabled = false
"""


def test_toml_and_json_files_give_the_same_destinations(tmp_path: Path) -> None:
    toml_path = tmp_path / "destinations.toml"
    toml_path.write_text(TOML)
    json_path = tmp_path / "destinations.json"
    json_path.write_text(json.dumps({"destinations": [
        {"name": "Amplitude", "filters": [{"name": "no internal traffic", "action": "drop",
                                           "match": {"where": [{"field": "properties.email",
                                                                "op": "matches",
                                                                "value": "*@acme.example"}]}}]},
        {"name": "Mixpanel", "enabled": False}]}))
    assert load_destinations(toml_path) == load_destinations(json_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("[[destinations]\n")
    with pytest.raises(DestinationsError, match=r"bad\.toml: not valid TOML"):
        load_destinations(bad)
    worse = tmp_path / "bad.json"
    worse.write_text('{"destinations": [{"name": 3}]}')
    with pytest.raises(DestinationsError, match=r"bad.json: destinations\[0\].name"):
        load_destinations(worse)


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "destinations.toml"
    path.write_text(TOML)
    sample = json.dumps(message(integrations={"amplitude": True}))
    assert cli_main(["destinations", "check", str(path), "--message", sample]) == 0
    out = capsys.readouterr().out
    assert "valid, 2 destination(s)" in out
    assert "no internal traffic: drop when properties.email matches" in out
    assert "x  Amplitude: dropped by filter 'no internal traffic'" in out
    assert "x  Mixpanel: disabled in the destinations file" in out
    assert "integrations names 'amplitude', which is not in the file" in out
    assert cli_main(["destinations", "check", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data["destinations"]] == ["Amplitude", "Mixpanel"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"destinations": [{"name": "A", "filters": [{"action": "nope"}]}]}')
    assert cli_main(["destinations", "check", str(bad)]) == 1
    assert "filters[0].action" in capsys.readouterr().err
    assert cli_main(["destinations", "check", str(path), "--message", "[1]"]) == 2
