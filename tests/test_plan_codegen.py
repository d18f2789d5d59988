"""Generated plan validators against the closure interpreter: the same verdict on every
case (plans in tests/plans and bench/, and schemas and values from a seeded generator),
the constructs handed to the interpreter really go there, and plan text never becomes
code."""

from __future__ import annotations

import ast
import collections
import datetime as dt
import enum
import json
import random
import re
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import pytest

from segment_client import Client, load_plan
from segment_client._plan import Rule, TrackingPlan, TrackingPlanViolation, Violation
from segment_client._plan._codegen import MAX_DEPTH, Generated, generate
from segment_client._plan._schema import Check, _Compiler
from segment_client.testing import RecordingTransport
from tests.test_plan import SCHEMA_CASES

ROOT = Path(__file__).parent
PLAN_FILES = [*sorted((ROOT / "plans").glob("*.json")), ROOT.parent / "bench" / "plan.json"]
UTC = dt.timezone.utc


class Color(enum.Enum):
    RED = "red"
    ONE = 1


class Level(enum.IntEnum):
    LOW = 1


class Text(str):
    pass


class Number(float):
    pass


# Values of every JSON kind and of every Python type the client accepts and converts.
ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 3, 2**60, 10**400, 0.0, 1.5, -2.5, 2.0, float("nan"),
    float("inf"), float("-inf"), "", "a", "ABC-1", "USD", "express", "ord-1", "10115",
    "2024-05-01T12:30:15Z", "2024-05-01", "not a date", "x" * 70, [], ["a"], [1, "a"],
    {}, {"a": 1}, Decimal("1.5"), Decimal(2), Decimal("NaN"), (1, 2), ("a",), {"s"},
    frozenset({1}), Color.RED, Color.ONE, Level.LOW, Text("USD"), Number(2.0),
    dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC), dt.date(2024, 5, 1), dt.time(12, 0),
    uuid.UUID(int=1), PurePosixPath("/a"), collections.OrderedDict(a=1),
    MappingProxyType({"a": 1}), object(),
]


def compiled(schema: Any) -> tuple[Check | None, Generated]:
    compiler = _Compiler("test")
    check = compiler.compile(schema)
    return check, generate(schema, compiler.nodes)


def outcome(function: Callable[[Any], Any], value: Any) -> Any:
    try:
        return function(value)
    except Exception as exc:  # both sides must fail the same way
        return ("raised", type(exc))


def assert_agree(check: Check | None, gen: Generated, value: Any) -> None:
    """The generated verdict is True exactly when the interpreter finds nothing."""
    found = None if check is None else outcome(check, value)
    verdict = outcome(gen.valid, value)
    if isinstance(found, tuple):
        # The interpreter raised: the generated code raises too, or answers False (and
        # the rule then runs the interpreter, which raises): never True.
        assert verdict in (found, False), (value, gen.source)
        return
    assert verdict is (not found), (value, found, gen.source)


# -- cases derived from a schema ---------------------------------------------------------

PATTERNS = {
    "^ord-[0-9]+$": "ord-12", "^[0-9]{5}$": "10115", "^[A-Z]{3}-[0-9]+$": "ABC-1",
    "^[a-z]+$": "abc", "a'b\"c": "xa'b\"cx", "^\\d+$": "42", "\\\\": "\\",
    # Where search and match differ: alternation, inline flags, a lookbehind.
    "^a|b": "xb", "^(?:a|b)c$": "bc", "(?m)^b": "a\nb", "^(?<=)x": "x", "^$": "",
}


def example(schema: Any, rng: random.Random) -> Any:
    """A value the schema probably accepts (bounds and patterns are honoured)."""
    if schema is True or schema is False or not isinstance(schema, dict):
        return "anything"
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    raw = schema.get("type")
    types = [raw] if isinstance(raw, str) else list(raw or [])
    if not types:
        types = ["object"] if "properties" in schema else (
            ["array"] if "items" in schema else ["string"])
    kind = rng.choice(types)
    if kind == "string":
        if "pattern" in schema:
            return PATTERNS.get(schema["pattern"], "abc")
        if schema.get("format") == "date-time":
            return rng.choice(["2024-05-01T12:30:15.250Z",
                               dt.datetime(2024, 5, 1, tzinfo=UTC)])
        if schema.get("format") == "date":
            return "2024-05-01"
        return "x" * max(schema.get("minLength", 0), min(3, schema.get("maxLength", 3)))
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100))
        value = (low + high) / 2
        return int(value) + 1 if kind == "integer" and int(value) + 1 < high else (
            int(value) if kind == "integer" else value)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "array":
        items = schema.get("items", True)
        count = max(schema.get("minItems", 0), min(2, schema.get("maxItems", 2)))
        return [example(items, rng) for _ in range(count)]
    props = schema.get("properties", {})
    return {name: example(sub, rng) for name, sub in props.items()}


def cases(schema: Any, rng: random.Random, budget: int = 60) -> Iterator[Any]:
    """The example, odd values in its place, and the example with each part changed."""
    base = example(schema, rng)
    yield base
    yield from rng.sample(ODD_VALUES, 12)
    if not isinstance(schema, dict):
        return
    if isinstance(base, dict):
        props = schema.get("properties", {})
        for name, sub in props.items():
            yield {k: v for k, v in base.items() if k != name}
            for changed in _limited(cases(sub, rng, budget // 3), budget // max(len(props), 1)):
                yield {**base, name: changed}
        yield {**base, "zz_extra": rng.choice(ODD_VALUES)}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for changed in _limited(cases(extra, rng, budget // 3), 6):
                yield {**base, "zz_extra": changed}
        yield collections.OrderedDict(base)
    if isinstance(base, list):
        items = schema.get("items", True)
        for changed in _limited(cases(items, rng, budget // 2), budget // 2):
            yield [*base, changed]
            yield [changed, *base]
        yield []
        yield base * 20
        yield tuple(base)


def _limited(values: Iterator[Any], count: int) -> Iterator[Any]:
    for index, value in enumerate(values):
        if index >= count:
            return
        yield value


def _rule_cases() -> Iterator[tuple[str, Rule]]:
    for path in PLAN_FILES:
        for rule in load_plan(path).rules:
            yield f"{path.parent.name}/{path.name}: {rule.label}", rule


RULES = list(_rule_cases())


@pytest.mark.parametrize(("name", "rule"), RULES, ids=[name for name, _ in RULES])
def test_every_rule_of_the_shipped_plans_agrees_with_the_interpreter(
    name: str, rule: Rule
) -> None:
    check, gen = compiled(rule.schema)
    rng = random.Random(name)
    kind = rule.kind
    field = "properties" if kind == "track" else "traits"
    payload = rule.payload
    count = 0
    for value in cases(payload, rng, budget=120):
        message = {"type": kind, "event": rule.key, "userId": "u1", field: value}
        assert_agree(check, gen, message)
        # The rule gives the interpreter's violations either way.
        interpreted = Rule(kind, rule.key, rule.schema, rule.version, check=check)
        if check is not None and not isinstance(outcome(check, message), tuple):
            assert rule.violations(message) == interpreted.violations(message)
        count += 1
    assert count > (12 if not payload.get("properties") else 30)
    odd: list[Any] = [{}, {"type": kind}, {field: None}, {field: []}, []]
    for other in odd:
        assert_agree(check, gen, other)


# -- seeded random schemas -----------------------------------------------------------------

NAMES = ["a", "b", "sku", "price", "x y", "*", "a.b", "[0]", "'", '"', "\\", "\n", "é", "1"]
KINDS = ["string", "number", "integer", "boolean", "object", "array", "null"]


def random_schema(rng: random.Random, depth: int = 0) -> Any:
    if depth > 0 and rng.random() < 0.06:
        return rng.choice([True, False, {}])
    schema: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.55:
        schema["type"] = rng.choice(KINDS if depth < 4 else KINDS[:4])
    elif roll < 0.75:
        schema["type"] = rng.sample(KINDS if depth < 4 else KINDS[:4], rng.randint(2, 3))
    if rng.random() < 0.15:
        pool: list[Any] = ["USD", "EUR", "", 1, 2.5, 0, True, False, None, {"a": 1}, [1]]
        schema["enum"] = rng.sample(pool, rng.randint(1, 4))
    elif rng.random() < 0.05:
        schema["const"] = rng.choice(["USD", 3, None, True, {"a": [1]}])
    if rng.random() < 0.25:
        schema["pattern"] = rng.choice(list(PATTERNS))
    if rng.random() < 0.15:
        schema["minLength"] = rng.randint(0, 3)
    if rng.random() < 0.15:
        schema["maxLength"] = rng.randint(1, 8)
    if rng.random() < 0.15:
        schema["format"] = rng.choice(["date-time", "date", "email"])
    for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if rng.random() < 0.12:
            schema[keyword] = rng.choice([0, 1, -5, 2.5, 10**20, 100])
    if depth < 5 and rng.random() < 0.45:
        names = rng.sample(NAMES, rng.randint(1, 4))
        schema["properties"] = {n: random_schema(rng, depth + 1) for n in names}
        if rng.random() < 0.5:
            schema["required"] = rng.sample(names, rng.randint(1, len(names)))
        roll = rng.random()
        if roll < 0.25:
            schema["additionalProperties"] = False
        elif roll < 0.35:
            schema["additionalProperties"] = random_schema(rng, depth + 1)
    if depth < 5 and rng.random() < 0.3:
        schema["items"] = random_schema(rng, depth + 1)
    if rng.random() < 0.1:
        schema["minItems"] = rng.randint(0, 2)
    if rng.random() < 0.1:
        schema["maxItems"] = rng.randint(0, 3)
    if rng.random() < 0.1:
        schema["description"] = "annotation only"
    return schema


@pytest.mark.parametrize("seed", range(40))
def test_generated_schemas_and_values_agree_with_the_interpreter(seed: int) -> None:
    rng = random.Random(seed)
    verdicts: collections.Counter[bool] = collections.Counter()
    for _ in range(12):
        schema = random_schema(rng)
        check, gen = compiled(schema)
        for value in _limited(cases(schema, rng), 150):
            assert_agree(check, gen, value)
            verdicts[outcome(gen.valid, value) is True] += 1
    # Both verdicts are exercised (over all seeds about a third of the cases are valid).
    assert verdicts[True] > 10 and verdicts[False] > 10
    assert verdicts.total() > 150


def test_the_generator_writes_code_for_the_common_constructs() -> None:
    # No silent fallback: a plan of the supported subset is written out inline.
    for path in PLAN_FILES:
        for rule in load_plan(path).rules:
            _, gen = compiled(rule.schema)
            assert gen.fallbacks == ()
    _, gen = compiled(random_schema(random.Random(7)))
    assert "def valid(v0):" in gen.source


# -- what goes to the interpreter ----------------------------------------------------------


def spied(schema: Any) -> tuple[Check | None, Generated, list[str]]:
    """Compile `schema` with every interpreter check the generated code calls recorded."""
    calls: list[str] = []

    def spy(path: str, check: Check) -> Check:
        def recorded(value: Any) -> Any:
            calls.append(path)
            return check(value)

        return recorded

    compiler = _Compiler("test")
    check = compiler.compile(schema)
    return check, generate(schema, compiler.nodes, delegate=spy), calls


def _props(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


FALLBACKS: list[tuple[str, dict[str, Any], dict[str, Any], str, bool]] = [
    # (what, schema, value, interpreter path called, valid)
    ("Decimal for a number", _props(p={"type": "number", "minimum": 0}),
     {"p": Decimal("2.5")}, "p", True),
    ("negative Decimal", _props(p={"type": "number", "minimum": 0}),
     {"p": Decimal("-1")}, "p", False),
    ("tuple for an array", _props(p={"type": "array", "items": {"type": "string"}}),
     {"p": ("a", "b")}, "p", True),
    ("tuple holding a wrong item", _props(p={"type": "array", "items": {"type": "string"}}),
     {"p": ("a", 1)}, "p", False),
    ("enum member for a string enum", _props(p={"enum": ["red", "blue"]}),
     {"p": Color.RED}, "p", True),
    ("str subclass", _props(p={"type": "string", "pattern": "^U"}), {"p": Text("USD")}, "p",
     True),
    ("float subclass", _props(p={"type": "number", "maximum": 1}), {"p": Number(2.0)}, "p",
     False),
    ("OrderedDict for an object", _props(p=_props(q={"type": "integer"})),
     {"p": collections.OrderedDict(q="x")}, "p", False),
    ("date for a date-time", _props(p={"type": "string", "format": "date-time"}),
     {"p": dt.date(2024, 1, 1)}, "p", False),
    ("UUID for a string", _props(p={"type": "string", "minLength": 40}),
     {"p": uuid.UUID(int=5)}, "p", False),
    ("int against a numeric enum", _props(p={"enum": [1, 2.5]}), {"p": 1}, "p", True),
    ("float against a numeric enum", _props(p={"enum": [1, 2.5]}), {"p": 2.5}, "p", True),
    ("integral float for an integer", _props(p={"type": "integer", "minimum": 3}),
     {"p": 4.0}, "p", True),
    ("fractional float for an integer", _props(p={"type": "integer"}), {"p": 4.5}, "p",
     False),
    ("object against a const", _props(p={"const": {"a": [1]}}), {"p": {"a": [1]}}, "p", True),
    ("wrong type", _props(p={"type": "string"}), {"p": 7}, "p", False),
]


@pytest.mark.parametrize(("what", "schema", "value", "path", "ok"), FALLBACKS,
                         ids=[case[0] for case in FALLBACKS])
def test_values_the_generator_does_not_cover_go_to_the_interpreter(
    what: str, schema: dict[str, Any], value: dict[str, Any], path: str, ok: bool
) -> None:
    check, gen, calls = spied(schema)
    assert gen.valid(value) is ok
    assert calls == [path]
    assert_agree(check, gen, value)


def test_plain_valid_values_never_reach_the_interpreter() -> None:
    schema = json.loads((ROOT.parent / "bench" / "plan.json").read_text())
    plan = load_plan(schema)
    rule = plan.track_rules["Order Completed"]
    _, gen, calls = spied(rule.schema)
    message = {"type": "track", "properties": {
        "order_id": "ord-1", "revenue": 3.5, "currency": "EUR", "quantity": 2, "coupon": None,
        "is_gift": False, "paid_at": dt.datetime(2024, 5, 1, tzinfo=UTC), "tags": ["a"],
        "items": [{"sku": "S", "name": "n", "price": 1, "quantity": 1}],
        "shipping": {"method": "express", "address": {"city": "Berlin", "zip": "10115"}},
    }}
    assert gen.valid(message) is True
    assert calls == []


def deep(levels: int, leaf: Any, required: bool = True) -> Any:
    schema = leaf
    for _ in range(levels):
        schema = {"type": "object", "properties": {"n": schema}}
        if required:
            schema["required"] = ["n"]
    return schema


def nested(levels: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"n": value}
    return value


def test_schemas_nested_past_the_limit_go_to_the_interpreter() -> None:
    levels = MAX_DEPTH + 5
    schema = deep(levels, {"type": "integer", "minimum": 0})
    check, gen, calls = spied(schema)
    inner = ".".join(["n"] * (MAX_DEPTH + 1))
    assert gen.fallbacks == (f"{inner}: nested deeper than {MAX_DEPTH}",)
    good, bad = nested(levels, 5), nested(levels, -5)
    assert gen.valid(good) is True and calls == [inner]
    assert gen.valid(bad) is False
    for value in (good, bad, nested(levels, "x"), nested(levels - 1, {}), nested(3, 1)):
        assert_agree(check, gen, value)
    # The whole rule still reports the interpreter's violation path.
    plan = load_plan({"rules": [{"type": "TRACK", "key": "E", "jsonSchema": {
        "type": "object", "properties": {"properties": schema}}}]})
    path = "properties." + ".".join(["n"] * levels)
    assert plan.check({"type": "track", "event": "E", "properties": bad}) == [
        f"track 'E': {path}: -5 breaks minimum 0"
    ]


def test_optional_properties_past_the_limit_go_to_the_interpreter() -> None:
    levels = MAX_DEPTH + 3
    check, gen, calls = spied(deep(levels, {"type": "string"}, required=False))
    for value in (nested(levels, "x"), nested(levels, 1), nested(MAX_DEPTH, {}),
                  nested(MAX_DEPTH + 1, {}), nested(MAX_DEPTH + 1, {"n": None}), {}):
        assert_agree(check, gen, value)
    assert gen.valid(nested(levels, 1)) is False
    assert calls and set(calls) == {".".join(["n"] * (MAX_DEPTH + 1))}


def test_a_rule_built_with_its_own_check_keeps_it() -> None:
    def check(message: Any) -> list[tuple[str, str]] | None:
        return [("x", "always wrong")]

    plan = TrackingPlan([Rule("track", "E", {}, check=check)])
    assert plan.check({"type": "track", "event": "E"}) == ["track 'E': x: always wrong"]


def test_the_client_reports_the_interpreter_violations() -> None:
    plan = load_plan(ROOT / "plans" / "native_shop.json")
    bad = {"order_id": "", "revenue": -1, "products": [{"sku": "abc", "price": 1}]}
    expected = [
        Violation("track 'Order Completed' v3", "properties.order_id",
                  "shorter than minLength 1"),
        Violation("track 'Order Completed' v3", "properties.revenue", "-1 breaks minimum 0"),
        Violation("track 'Order Completed' v3", "properties.products[0].sku",
                  "'abc' does not match pattern '^[A-Z]{3}-[0-9]+$'"),
    ]
    with Client("k", transport=RecordingTransport(), tracking_plan=plan,
                on_violation="raise") as client:
        with pytest.raises(TrackingPlanViolation) as raised:
            client.track("u1", "Order Completed", bad)
        client.track("u1", "Order Completed", {"order_id": "o", "revenue": 1})
    assert raised.value.violations == expected
    assert raised.value.path == "properties.order_id"


# -- plan text never becomes code ------------------------------------------------------------

HOSTILE = [
    "'); import os; os.system('echo pwned') #", '"""', "'''", "\\", "\n    return True\n",
    "a\nb", "\u2028", "{__import__('os')}", "__class__", "v0", "_M", "_k0", "\x00", "é",
    "\ud800",
]


def test_hostile_names_and_patterns_stay_data() -> None:
    props = {name: {"type": "string", "pattern": name.replace("\\", "\\\\").replace(
        "(", "\\(").replace(")", "\\)").replace("{", "\\{").replace("}", "\\}")
        .replace("[", "\\[").replace("'", "'").replace(".", "\\.")}
        for name in HOSTILE}
    for pattern in (p["pattern"] for p in props.values()):
        re.compile(pattern)
    schema = {"type": "object", "properties": props, "required": HOSTILE[:3],
              "additionalProperties": False}
    check, gen = compiled(schema)
    tree = ast.parse(gen.source)
    allowed = re.compile(
        r"^(v\d+|k\d+|_k\d+|_M|_len|_str|_int|_float|_bool|_dict|_list|_datetime|_KeyError|_factory|"
        r"valid)$"
    )
    strings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert allowed.match(node.id), node.id
        elif isinstance(node, ast.Attribute):
            assert node.attr in ("__class__", "get", "issuperset"), node.attr
        elif isinstance(node, ast.Constant):
            assert node.value is None or type(node.value) in (str, int, bool), node.value
            if type(node.value) is str:
                strings.add(node.value)
        elif isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name | ast.Attribute)
    assert strings == set(HOSTILE)  # the names, exactly, as literals; nothing else
    for name in HOSTILE:
        assert f"#{name}" not in gen.source or name == "'"  # never in a comment
    good = {name: name for name in HOSTILE}
    assert gen.valid(good) is True
    for value in (good, {**good, HOSTILE[0]: "nope"}, {HOSTILE[1]: 1}, {**good, "x": "x"}):
        assert_agree(check, gen, value)


def test_message_data_is_never_run() -> None:
    _, gen = compiled(_props(p={"type": "string", "pattern": "^ok$"}))
    evil = {"p": "__import__('os').system('exit 1')", "__import__('os')": 1}
    assert gen.valid(evil) is False
    assert gen.valid({"p": "ok", "exec('1')": "x"}) is True



def test_the_schema_subset_table_agrees() -> None:
    for schema, value, _ in SCHEMA_CASES:
        check, gen = compiled(_props(v=schema))
        assert_agree(check, gen, {"v": value})
