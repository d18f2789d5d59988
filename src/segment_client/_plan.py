"""Tracking plans: loading (Segment exports and a native form), compiled validation, and
the client-side enforcement policies.

A plan holds one rule per tracked event, plus optional identify and group rules. Each
rule is a JSON Schema for the whole message (as in Segment's Protocols), compiled once
into nested closures; checking a message walks only what the schema mentions.

Supported JSON Schema subset (draft-07 semantics): `type` (a name or a list of names),
`required`, `properties`, `additionalProperties` (boolean or schema), `enum`, `const`,
`pattern`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`,
`maxLength`, `items` (one schema), `minItems`, `maxItems`, `format` (`date-time` and
`date` are checked; other formats are annotations). Annotations (`description`, `title`,
`$schema`, `$id`, `id`, `key`, `default`, `examples`, ...) are ignored. Keywords that
would change what is valid but are not supported (`$ref`, `anyOf`, `oneOf`, `allOf`,
`not`, `if`, `patternProperties`, `multipleOf`, `uniqueItems`, ...) make loading fail
with a `PlanError` naming the rule and the keyword's place, never silently pass.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Any, Literal

from ._exceptions import ConfigurationError, DeliveryError, MessageError

__all__ = [
    "PlanEnforcer",
    "PlanError",
    "Rule",
    "TrackingPlan",
    "TrackingPlanViolation",
    "Violation",
    "load_plan",
]

logger = logging.getLogger("segment_client")

ViolationPolicy = Literal["raise", "report", "drop"]
UnplannedPolicy = Literal["allow", "report", "drop"]
ViolationHandler = Callable[["TrackingPlanViolation", dict[str, Any]], None]


class PlanError(ConfigurationError):
    """A tracking plan cannot be loaded: the message names the rule and what is wrong."""


@dataclass(frozen=True)
class Violation:
    """One way a message breaks its rule: `path` is where (e.g. `properties.price`)."""

    rule: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.path or '(message)'}: {self.problem}"


class TrackingPlanViolation(MessageError):
    """A message does not follow the tracking plan (raised with `on_violation="raise"`).

    Attributes:
        event: the event name (track) or message type (identify, group).
        rule: the rule, e.g. `track "Order Completed" v2`; None for an unplanned event.
        path: the property path of the first violation, e.g. `properties.price`.
        violations: every violation found.
    """

    def __init__(self, event: str, rule: str | None, violations: list[Violation]) -> None:
        shown = "; ".join(f"{v.path or '(message)'}: {v.problem}" for v in violations[:5])
        more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
        where = f"rule {rule}" if rule else "the tracking plan"
        super().__init__(f"{event!r} does not follow {where}: {shown}{more}")
        self.event = event
        self.rule = rule
        self.violations = violations
        self.path = violations[0].path if violations else ""


# -- the JSON Schema subset compiler ----------------------------------------------------

#: value -> None when it is valid, else (relative path, problem) pairs ("" = the value).
Check = Callable[[Any], "list[tuple[str, str]] | None"]
#: A part of a checker that runs for one JSON kind of value.
_Part = Callable[[Any], "list[tuple[str, str]] | None"]

_MISSING = object()

_ANNOTATIONS = frozenset({
    "$schema", "$id", "id", "$comment", "title", "description", "default", "examples",
    "key", "readOnly", "writeOnly", "deprecated", "definitions", "$defs", "format",
})
_UNSUPPORTED = frozenset({
    "$ref", "anyOf", "oneOf", "allOf", "not", "if", "then", "else", "patternProperties",
    "dependencies", "dependentRequired", "dependentSchemas", "propertyNames", "contains",
    "uniqueItems", "multipleOf", "additionalItems", "minProperties", "maxProperties",
    "unevaluatedProperties", "unevaluatedItems", "prefixItems", "minContains", "maxContains",
})
_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})

_KIND: dict[type, str] = {
    str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null",
    dict: "object", list: "array",
}
# The Python types that certainly are a JSON kind (for the fast path of plain leaves).
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "null": (type(None),), "object": (dict,), "array": (list,),
}

# RFC 3339 date-time (the `T` may be a space or lowercase, as RFC 3339 allows).
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _kind(value: Any) -> tuple[str, Any]:
    """The JSON type `value` will be encoded as, and the value as JSON will hold it."""
    kind = _KIND.get(type(value))
    if kind is not None:
        return kind, value
    # The slow path mirrors _json.convert for what the client accepts and encodes.
    if isinstance(value, bool):
        return "boolean", value
    if isinstance(value, int):
        return "integer", int(value)
    if isinstance(value, float):
        return "number", float(value)
    if isinstance(value, str):
        return "string", str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return "string", value
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "null", None
        if value == value.to_integral_value():
            return "integer", int(value)
        return "number", float(value)
    if isinstance(value, uuid.UUID | PurePath):
        return "string", str(value)
    if isinstance(value, enum.Enum):
        return _kind(value.value if isinstance(value.value, str) else str(value.value))
    if isinstance(value, Mapping):
        return "object", value
    if isinstance(value, list | tuple | set | frozenset):
        return "array", list(value)
    return "unknown", value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _nest(key: str, found: list[tuple[str, str]], out: list[tuple[str, str]]) -> None:
    """Prefix child errors with `key` (a property name or `[i]`)."""
    for path, problem in found:
        if not path:
            out.append((key, problem))
        elif path[0] == "[":
            out.append((key + path, problem))
        else:
            out.append((f"{key}.{path}", problem))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Node:
    """A compiled schema: `check`, and `fast`: Python types valid with no further check."""

    __slots__ = ("check", "fast")

    def __init__(self, check: Check, fast: frozenset[type]) -> None:
        self.check = check
        self.fast = fast


class _Compiler:
    """Compiles one rule's schema; `where` prefixes every PlanError."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, at: str, problem: str) -> PlanError:
        return PlanError(f"{self.where}: schema at {at or '(root)'}: {problem}")

    def compile(self, schema: Any, at: str = "") -> Check | None:
        """A checker for `schema`, or None when it accepts anything."""
        node = self.node(schema, at)
        return None if node is None else node.check

    def node(self, schema: Any, at: str) -> _Node | None:
        if schema is True or schema == {}:
            return None
        if schema is False:
            def never(value: Any) -> list[tuple[str, str]]:
                return [("", "no value is allowed here")]
            return _Node(never, frozenset())
        if not isinstance(schema, Mapping):
            raise self.fail(at, f"a schema must be an object, got {type(schema).__name__}")
        for keyword in schema:
            if keyword in _UNSUPPORTED:
                raise self.fail(
                    at, f"keyword {keyword!r} is not supported (see the supported subset "
                    "in docs/tracking-plans.md)"
                )
        types = self._types(schema, at)
        by_kind: dict[str, list[_Part]] = {}
        for kind, part in (
            ("object", self._object_part(schema, at)),
            ("string", self._string_part(schema, at)),
            ("number", self._number_part(schema, at)),
            ("integer", self._number_part(schema, at)),
            ("array", self._array_part(schema, at)),
        ):
            if part is not None:
                by_kind.setdefault(kind, []).append(part)
        value_part = self._value_part(schema, at)
        if value_part is not None:
            for kind in (*_TYPES, "unknown"):
                by_kind.setdefault(kind, []).append(value_part)
        if types is None and not by_kind:
            return None
        checked = types if types is not None else frozenset(_TYPES)
        # "number" accepts integers; an integral float is an "integer".
        fast = frozenset(
            t for kind in checked if kind not in by_kind and not (
                kind == "number" and "integer" in by_kind
            ) for t in _PY_TYPES[kind]
        )
        if "number" in checked and "integer" in by_kind and "number" not in by_kind:
            fast = fast - {float}
        expected = " or ".join(sorted(types)) if types else ""
        number_ok = types is not None and "number" in types
        integer_ok = types is not None and "integer" in types
        parts = {kind: tuple(found) for kind, found in by_kind.items()}

        if types is not None and len(types) == 1 and not integer_ok and not number_ok:
            # The common case, specialised: one type, at most one part for it.
            [only] = types
            only_parts = parts.get(only, ())
            if len(only_parts) <= 1:
                return _Node(self._single(only, expected, only_parts), fast)

        def check(value: Any) -> list[tuple[str, str]] | None:
            kind = _KIND.get(value.__class__)
            if kind is None:
                kind, value = _kind(value)
            if types is not None and kind not in types:
                if kind == "integer" and number_ok:
                    pass
                elif kind == "number" and integer_ok and float(value).is_integer():
                    kind = "integer"
                else:
                    return [("", f"expected {expected}, got {_describe(kind, value)}")]
            found: list[tuple[str, str]] | None = None
            for part in parts.get(kind, ()):
                more = part(value)
                if more:
                    found = more if found is None else found + more
            return found

        return _Node(check, fast)

    @staticmethod
    def _single(only: str, expected: str, parts: tuple[_Part, ...]) -> Check:
        part = parts[0] if parts else None

        def check(value: Any) -> list[tuple[str, str]] | None:
            kind = _KIND.get(value.__class__)
            if kind is None:
                kind, value = _kind(value)
            if kind != only:
                return [("", f"expected {expected}, got {_describe(kind, value)}")]
            return None if part is None else part(value)

        return check

    def _types(self, schema: Mapping[str, Any], at: str) -> frozenset[str] | None:
        raw = schema.get("type")
        if raw is None:
            return None
        names = [raw] if isinstance(raw, str) else raw
        if not isinstance(names, list) or not names or not all(
            isinstance(n, str) for n in names
        ):
            raise self.fail(at, f"'type' must be a type name or a list of them, got {raw!r}")
        unknown = [n for n in names if n not in _TYPES]
        if unknown:
            raise self.fail(
                at, f"unknown type {unknown[0]!r} (expected one of {', '.join(sorted(_TYPES))})"
            )
        return frozenset(names)

    def _object_part(self, schema: Mapping[str, Any], at: str) -> _Part | None:
        props = schema.get("properties", {})
        if not isinstance(props, Mapping):
            raise self.fail(at, "'properties' must be an object mapping names to schemas")
        children: list[tuple[str, Check, frozenset[type]]] = []
        for name, sub in props.items():
            child = self.node(sub, _join(at, str(name)))
            if child is not None:
                children.append((str(name), child.check, child.fast))
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise self.fail(at, f"'required' must be a list of property names, got {required!r}")
        extra = schema.get("additionalProperties", True)
        extra_node: _Node | None = None
        if extra is not True:
            if extra is not False and not isinstance(extra, Mapping):
                raise self.fail(at, "'additionalProperties' must be a boolean or a schema")
            extra_node = self.node(extra, _join(at, "*"))
        known = frozenset(props)
        closed = extra is False
        if not children and not required and extra_node is None and not closed:
            return None
        need = tuple(required)
        extra_check = None if extra_node is None else extra_node.check

        def object_part(value: Any) -> list[tuple[str, str]] | None:
            found: list[tuple[str, str]] | None = None
            for name in need:
                if name not in value:
                    found = found or []
                    found.append((name, "required property is missing"))
            get = value.get
            for name, check, fast in children:
                item = get(name, _MISSING)
                if item is _MISSING or item.__class__ in fast:
                    continue
                more = check(item)
                if more:
                    found = found or []
                    _nest(name, more, found)
            if closed:
                for name in value:
                    if name not in known:
                        found = found or []
                        found.append((str(name), "property is not in the plan "
                                      "(additionalProperties is false)"))
            elif extra_check is not None:
                for name in value:
                    if name not in known:
                        more = extra_check(value[name])
                        if more:
                            found = found or []
                            _nest(str(name), more, found)
            return found

        return object_part

    def _string_part(self, schema: Mapping[str, Any], at: str) -> _Part | None:
        pattern = schema.get("pattern")
        regex: re.Pattern[str] | None = None
        if pattern is not None:
            if not isinstance(pattern, str):
                raise self.fail(at, f"'pattern' must be a string, got {pattern!r}")
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise self.fail(at, f"'pattern' {pattern!r} is not a valid regex: {exc}") from None
        min_len = self._count(schema, "minLength", at)
        max_len = self._count(schema, "maxLength", at)
        fmt = schema.get("format")
        fmt_re = _DATE_TIME if fmt == "date-time" else _DATE if fmt == "date" else None
        if regex is None and min_len is None and max_len is None and fmt_re is None:
            return None

        def string_part(value: Any) -> list[tuple[str, str]] | None:
            if not isinstance(value, str):
                # A datetime/date object: the encoder writes it as ISO 8601.
                if fmt == "date-time" and not isinstance(value, dt.datetime):
                    return [("", f"expected a date-time, got {type(value).__name__}")]
                return None
            found = []
            if regex is not None and regex.search(value) is None:
                found.append(("", f"{_short(value)} does not match pattern {pattern!r}"))
            if min_len is not None and len(value) < min_len:
                found.append(("", f"shorter than minLength {min_len}"))
            if max_len is not None and len(value) > max_len:
                found.append(("", f"longer than maxLength {max_len}"))
            if fmt_re is not None and fmt_re.match(value) is None:
                found.append(("", f"{_short(value)} is not a valid {fmt}"))
            return found or None

        return string_part

    def _number_part(self, schema: Mapping[str, Any], at: str) -> _Part | None:
        bounds: list[tuple[str, float]] = []
        for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            bound = schema.get(keyword)
            if bound is None:
                continue
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise self.fail(at, f"{keyword!r} must be a number, got {bound!r}")
            bounds.append((keyword, bound))
        if not bounds:
            return None

        def number_part(value: Any) -> list[tuple[str, str]] | None:
            found = None
            for keyword, bound in bounds:
                if keyword == "minimum":
                    bad = value < bound
                elif keyword == "maximum":
                    bad = value > bound
                elif keyword == "exclusiveMinimum":
                    bad = value <= bound
                else:
                    bad = value >= bound
                if bad:
                    found = found or []
                    found.append(("", f"{_short(value)} breaks {keyword} {bound}"))
            return found

        return number_part

    def _array_part(self, schema: Mapping[str, Any], at: str) -> _Part | None:
        items = schema.get("items")
        if items is not None and not isinstance(items, Mapping | bool):
            raise self.fail(at, "'items' must be one schema (tuple-form items are not supported)")
        item_node = None if items is None else self.node(items, f"{at}[]")
        min_items = self._count(schema, "minItems", at)
        max_items = self._count(schema, "maxItems", at)
        if item_node is None and min_items is None and max_items is None:
            return None
        item_check = None if item_node is None else item_node.check
        item_fast = frozenset() if item_node is None else item_node.fast

        def array_part(value: Any) -> list[tuple[str, str]] | None:
            found = None
            if min_items is not None and len(value) < min_items:
                found = [("", f"fewer than minItems {min_items}")]
            if max_items is not None and len(value) > max_items:
                found = found or []
                found.append(("", f"more than maxItems {max_items}"))
            if item_check is not None:
                for index, item in enumerate(value):
                    if item.__class__ in item_fast:
                        continue
                    more = item_check(item)
                    if more:
                        found = found or []
                        _nest(f"[{index}]", more, found)
            return found

        return array_part

    def _value_part(self, schema: Mapping[str, Any], at: str) -> _Part | None:
        if "enum" in schema:
            allowed = schema["enum"]
            if not isinstance(allowed, list) or not allowed:
                raise self.fail(at, f"'enum' must be a non-empty list, got {allowed!r}")
        elif "const" in schema:
            allowed = [schema["const"]]
        else:
            return None
        # (kind, value) pairs so that 1 == True and 1 == 1.0 do not blur JSON types.
        keys = {_enum_key(v) for v in allowed}
        shown = ", ".join(json.dumps(v) for v in allowed[:10])

        def value_part(value: Any) -> list[tuple[str, str]] | None:
            try:
                ok = _enum_key(value) in keys
            except TypeError:
                ok = value in allowed
            return None if ok else [("", f"{_short(value)} is not one of [{shown}]")]

        return value_part

    def _count(self, schema: Mapping[str, Any], keyword: str, at: str) -> int | None:
        value = schema.get(keyword)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(at, f"{keyword!r} must be a non-negative integer, got {value!r}")
        return value


def _enum_key(value: Any) -> Any:
    kind, value = _kind(value)
    if kind in ("integer", "number"):
        return ("number", float(value))
    if kind in ("object", "array"):
        return (kind, json.dumps(value, sort_keys=True, default=str))
    if kind == "string" and not isinstance(value, str):
        return (kind, value.isoformat())
    return (kind, value)


def _describe(kind: str, value: Any) -> str:
    if kind == "unknown":
        return type(value).__name__
    if kind in ("object", "array"):
        return kind
    return f"{kind} {_short(value)}"


# -- rules and plans --------------------------------------------------------------------


@dataclass
class Rule:
    """One compiled rule. `schema` is the whole-message JSON Schema; `payload` is the
    schema of its `properties` (track) or `traits` (identify, group)."""

    kind: str  # "track", "identify" or "group"
    key: str | None  # the event name for track rules
    schema: dict[str, Any]
    version: int | None = None
    description: str = ""
    check: Check | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        name = f"{self.kind} {self.key!r}" if self.key is not None else self.kind
        return f"{name} v{self.version}" if self.version is not None else name

    @property
    def payload(self) -> dict[str, Any]:
        field_name = "properties" if self.kind == "track" else "traits"
        props = self.schema.get("properties")
        sub = props.get(field_name) if isinstance(props, Mapping) else None
        return dict(sub) if isinstance(sub, Mapping) else {}

    def violations(self, message: Mapping[str, Any]) -> list[Violation]:
        """What is wrong with `message` under this rule (empty: it follows it)."""
        if self.check is None:
            return []
        found = self.check(message)
        if not found:
            return []
        label = self.label
        return [Violation(label, path, problem) for path, problem in found]


class TrackingPlan:
    """A loaded, compiled tracking plan. Immutable after loading; thread-safe to share.

    Use `load_plan()` to build one. `check(message)` returns violation strings; the
    client uses `rule_for()` and `Rule.violations()`.
    """

    def __init__(
        self, rules: list[Rule], *, name: str = "", source: str | None = None,
        ignored: list[str] | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.ignored = ignored or []
        self.track_rules: dict[str, Rule] = {}
        self.identify: Rule | None = None
        self.group: Rule | None = None
        for rule in rules:
            where = f"rule {rule.label}"
            if rule.check is None:
                rule.check = _Compiler(where).compile(rule.schema)
            if rule.kind == "track":
                if rule.key is None:
                    raise PlanError(f"{where}: a track rule needs an event name")
                if rule.key in self.track_rules:
                    raise PlanError(f"{where}: event {rule.key!r} has more than one rule")
                self.track_rules[rule.key] = rule
            elif rule.kind in ("identify", "group"):
                if getattr(self, rule.kind) is not None:
                    raise PlanError(f"{where}: the plan has more than one {rule.kind} rule")
                setattr(self, rule.kind, rule)
            else:  # pragma: no cover - loaders only build the three kinds
                raise PlanError(f"{where}: unknown rule kind {rule.kind!r}")

    @property
    def rules(self) -> list[Rule]:
        """Every rule: track rules by event name, then identify and group."""
        out = [self.track_rules[k] for k in sorted(self.track_rules)]
        return out + [r for r in (self.identify, self.group) if r is not None]

    def rule_for(self, message: Mapping[str, Any]) -> Rule | None:
        """The rule that applies to `message`, if any."""
        kind = message.get("type")
        if kind == "track":
            return self.track_rules.get(message.get("event"))  # type: ignore[arg-type]
        if kind == "identify":
            return self.identify
        if kind == "group":
            return self.group
        return None

    def is_unplanned(self, message: Mapping[str, Any]) -> bool:
        """True for a track event the plan does not list."""
        return message.get("type") == "track" and message.get("event") not in self.track_rules

    def violations(self, message: Mapping[str, Any]) -> list[Violation]:
        """Every violation of `message`, an unplanned track event included."""
        if self.is_unplanned(message):
            return [Violation(f"track {message.get('event')!r}", "event",
                              "event is not in the tracking plan")]
        rule = self.rule_for(message)
        return [] if rule is None else rule.violations(message)

    def check(self, message: Mapping[str, Any]) -> list[str]:
        """Violation strings for `message` (empty when it follows the plan). Thread-safe."""
        return [str(v) for v in self.violations(message)]

    def __repr__(self) -> str:
        return (
            f"TrackingPlan(name={self.name!r}, events={len(self.track_rules)}, "
            f"identify={self.identify is not None}, group={self.group is not None})"
        )


# -- loading ----------------------------------------------------------------------------

_SEGMENT_KINDS = {"TRACK": "track", "IDENTIFY": "identify", "GROUP": "group"}


def load_plan(source: str | os.PathLike[str] | Mapping[str, Any] | TrackingPlan) -> TrackingPlan:
    """Load and compile a tracking plan from a JSON file path or an already parsed dict.

    Accepts Segment's exports (Public API rules, `{"rules": [{"type": "TRACK", "key",
    "version", "jsonSchema"}]}`, optionally inside `{"data": ...}`; the Config API /
    Typewriter `plan.json` with `rules.events[]`, `rules.identify`, `rules.group`) and
    the native form (`{"events": {name: {"properties": {...}}}, "identify": ...}`).
    Raises `PlanError` naming the rule on any problem. Blocking (reads the file).
    """
    if isinstance(source, TrackingPlan):
        return source
    where: str | None = None
    if isinstance(source, str | os.PathLike):
        where = os.fspath(source)
        try:
            text = Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise PlanError(f"cannot read tracking plan {where!r}: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PlanError(f"tracking plan {where!r} is not valid JSON: {exc}") from None
    else:
        data = source
    if not isinstance(data, Mapping):
        raise PlanError(f"a tracking plan must be a JSON object, got {type(data).__name__}")
    if isinstance(data.get("data"), Mapping):
        data = data["data"]
    if isinstance(data.get("trackingPlan"), Mapping):
        data = {**data["trackingPlan"], **{k: v for k, v in data.items() if k == "rules"}}
    name = str(data.get("display_name") or data.get("name") or "")
    ignored: list[str] = []
    rules_field = data.get("rules")
    if isinstance(rules_field, list):
        rules = _from_public_api(rules_field, ignored)
    elif isinstance(rules_field, Mapping):
        rules = _from_config_api(rules_field, ignored)
    elif isinstance(data.get("events"), list):  # Typewriter's bare plan.json
        rules = _from_config_api(data, ignored)
    elif isinstance(data.get("events"), Mapping) or "identify" in data or "group" in data:
        rules = _from_native(data)
    else:
        raise PlanError(
            "not a tracking plan: expected 'rules' (a Segment export) or 'events' "
            f"(the native form); found keys {sorted(map(str, data))}"
        )
    for item in ignored:
        logger.debug("segment_client: tracking plan rule not enforced: %s", item)
    return TrackingPlan(rules, name=name, source=where, ignored=ignored)


def _version(raw: Any, where: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or int(raw) != raw:
        raise PlanError(f"{where}: 'version' must be an integer, got {raw!r}")
    return int(raw)


def _schema(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, str):  # some exports carry the schema as a JSON string
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise PlanError(f"{where}: jsonSchema is not valid JSON: {exc}") from None
    if not isinstance(raw, Mapping):
        raise PlanError(f"{where}: the schema must be a JSON object, got {type(raw).__name__}")
    return dict(raw)


def _from_public_api(items: list[Any], ignored: list[str]) -> list[Rule]:
    rules = []
    for index, item in enumerate(items):
        where = f"rules[{index}]"
        if not isinstance(item, Mapping):
            raise PlanError(f"{where}: a rule must be an object, got {type(item).__name__}")
        raw_type = item.get("type")
        if not isinstance(raw_type, str):
            raise PlanError(
                f"{where}: 'type' must be TRACK, IDENTIFY, GROUP, ..., got {raw_type!r}"
            )
        key = item.get("key")
        if key is not None and not isinstance(key, str):
            raise PlanError(f"{where}: 'key' must be a string, got {key!r}")
        where = f"rule {where} ({raw_type} {key!r})" if key else f"rule {where} ({raw_type})"
        if item.get("deprecatedAt"):
            ignored.append(f"{where}: deprecated")
            continue
        kind = _SEGMENT_KINDS.get(raw_type.upper())
        if kind is None:
            # COMMON, PAGE and SCREEN rules are not enforced by the client (documented).
            ignored.append(f"{where}: {raw_type} rules are not enforced client-side")
            continue
        if kind == "track" and not key:
            raise PlanError(f"{where}: a TRACK rule needs 'key' (the event name)")
        schema = _schema(item.get("jsonSchema", item.get("json_schema")), where)
        rules.append(Rule(
            kind, key if kind == "track" else None, schema,
            version=_version(item.get("version"), where),
            description=str(schema.get("description") or item.get("description") or ""),
            check=_Compiler(where).compile(schema),
        ))
    return rules


def _from_config_api(data: Mapping[str, Any], ignored: list[str]) -> list[Rule]:
    rules = []
    events = data.get("events", [])
    if not isinstance(events, list):
        raise PlanError("rules.events must be a list of event rules")
    for index, item in enumerate(events):
        where = f"rules.events[{index}]"
        if not isinstance(item, Mapping):
            raise PlanError(f"{where}: an event rule must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise PlanError(f"{where}: 'name' (the event name) must be a non-empty string")
        where = f"rule {where} ({name!r})"
        schema = _schema(item.get("rules"), where)
        rules.append(Rule(
            "track", name, schema, version=_version(item.get("version"), where),
            description=str(item.get("description") or schema.get("description") or ""),
            check=_Compiler(where).compile(schema),
        ))
    for kind in ("identify", "group"):
        raw = data.get(kind)
        if raw is None or raw == {}:
            continue
        where = f"rule rules.{kind}"
        schema = _schema(raw, where)
        rules.append(Rule(kind, None, schema, description=str(schema.get("description") or ""),
                          check=_Compiler(where).compile(schema)))
    if data.get("global"):
        ignored.append("rules.global: common rules are not enforced client-side")
    return rules


def _native_payload(spec: Any, field_name: str, where: str) -> dict[str, Any]:
    """The native shorthand: `{name: schema + "required": bool}` -> a JSON Schema object."""
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise PlanError(f"{where}: expected an object, got {type(spec).__name__}")
    unknown = set(spec) - {field_name, "description", "additionalProperties", "version"}
    if unknown:
        raise PlanError(
            f"{where}: unknown key {sorted(unknown)[0]!r} (expected {field_name!r}, "
            "'description', 'additionalProperties' or 'version')"
        )
    props = spec.get(field_name, {})
    if not isinstance(props, Mapping):
        raise PlanError(f"{where}: {field_name!r} must map names to property schemas")
    payload = _native_object(props, f"{where}: {field_name}")
    if "additionalProperties" in spec:
        payload["additionalProperties"] = spec["additionalProperties"]
    return payload


def _native_object(props: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    required: list[str] = []
    for name, prop in props.items():
        if isinstance(prop, str):  # "string" is short for {"type": "string"}
            prop = {"type": prop}
        if not isinstance(prop, Mapping):
            raise PlanError(f"{where}.{name}: expected a schema object or a type name")
        prop = dict(prop)
        flag = prop.pop("required", None) if isinstance(prop.get("required"), bool) else None
        if flag:
            required.append(str(name))
        if isinstance(prop.get("properties"), Mapping):
            nested = _native_object(prop["properties"], f"{where}.{name}")
            prop["properties"] = nested["properties"]
            if nested.get("required"):
                prop["required"] = sorted({*prop.get("required", []), *nested["required"]})
            prop.setdefault("type", "object")
        items = prop.get("items")
        if isinstance(items, Mapping) and isinstance(items.get("properties"), Mapping):
            nested = _native_object(items["properties"], f"{where}.{name}[]")
            prop["items"] = {**items, **nested, "type": "object"}
        out[str(name)] = prop
    schema: dict[str, Any] = {"type": "object", "properties": out}
    if required:
        schema["required"] = required
    return schema


def _from_native(data: Mapping[str, Any]) -> list[Rule]:
    rules = []
    events = data.get("events", {})
    if not isinstance(events, Mapping):
        raise PlanError("'events' must map event names to event specs")
    for name, spec in events.items():
        where = f"rule track {name!r}"
        if not isinstance(name, str) or not name:
            raise PlanError(f"{where}: an event name must be a non-empty string")
        payload = _native_payload(spec, "properties", where)
        schema = _message_schema("properties", payload)
        spec = spec or {}
        rules.append(Rule(
            "track", name, schema, version=_version(spec.get("version"), where),
            description=str(spec.get("description") or ""),
            check=_Compiler(where).compile(schema),
        ))
    for kind in ("identify", "group"):
        if data.get(kind) is None:
            continue
        where = f"rule {kind}"
        payload = _native_payload(data[kind], "traits", where)
        schema = _message_schema("traits", payload)
        rules.append(Rule(
            kind, None, schema, description=str(data[kind].get("description") or ""),
            check=_Compiler(where).compile(schema),
        ))
    return rules


def _message_schema(field_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {field_name: payload}, "required": [field_name]}


# -- enforcement in the client ----------------------------------------------------------

_VIOLATION_POLICIES = ("raise", "report", "drop")
_UNPLANNED_POLICIES = ("allow", "report", "drop")


class PlanEnforcer:
    """Applies a plan and its policies to each message on the caller's thread.

    Thread-safe; counters are guarded by a lock. `drop` is the consumer's drop
    reporter (count + log + on_error).
    """

    def __init__(
        self,
        plan: TrackingPlan,
        *,
        on_violation: str,
        on_unplanned: str,
        handler: ViolationHandler | None,
        drop: Callable[[str, DeliveryError, list[dict[str, Any]]], None],
    ) -> None:
        if on_violation not in _VIOLATION_POLICIES:
            raise ConfigurationError(
                f"on_violation must be 'raise', 'report' or 'drop', got {on_violation!r}"
            )
        if on_unplanned not in _UNPLANNED_POLICIES:
            raise ConfigurationError(
                f"on_unplanned must be 'allow', 'report' or 'drop', got {on_unplanned!r}"
            )
        if handler is not None and not callable(handler):
            raise ConfigurationError(f"on_plan_violation must be callable, got {handler!r}")
        self.plan = plan
        self.on_violation = on_violation
        self.on_unplanned = on_unplanned
        self._handler = handler
        self._drop = drop
        self._lock = threading.Lock()
        self.violations = 0
        self.unplanned = 0

    def admit(self, message: dict[str, Any]) -> bool:
        """True: send `message`. False: it was dropped (and reported). May raise
        `TrackingPlanViolation` under the "raise" policy."""
        plan = self.plan
        if message.get("type") == "track":
            rule = plan.track_rules.get(message.get("event"))  # type: ignore[arg-type]
            if rule is None:
                return self._unplanned(message)
        else:
            rule = plan.rule_for(message)
            if rule is None:
                return True
        found = rule.violations(message)
        if not found:
            return True
        with self._lock:
            self.violations += 1
        event = str(message.get("event") or message.get("type"))
        error = TrackingPlanViolation(event, rule.label, found)
        policy = self.on_violation
        if policy == "raise":
            raise error
        self._call_handler(error, message)
        if policy == "drop":
            self._drop(
                "tracking_plan",
                _dropped_error(f"dropped by the tracking plan: {error}", error),
                [message],
            )
            return False
        logger.warning("segment_client: tracking plan violation: %s", error)
        return True

    def _unplanned(self, message: dict[str, Any]) -> bool:
        with self._lock:
            self.unplanned += 1
        policy = self.on_unplanned
        if policy == "allow":
            return True
        event = str(message.get("event"))
        error = TrackingPlanViolation(
            event, None,
            [Violation(f"track {event!r}", "event", "event is not in the tracking plan")],
        )
        self._call_handler(error, message)
        if policy == "drop":
            self._drop(
                "unplanned", _dropped_error(f"dropped as unplanned: {error}", error), [message]
            )
            return False
        logger.warning("segment_client: unplanned event %r", event)
        return True

    def _call_handler(self, error: TrackingPlanViolation, message: dict[str, Any]) -> None:
        if self._handler is None:
            return
        try:
            self._handler(error, message)
        except Exception:
            logger.exception("segment_client: on_plan_violation raised; ignored")


def _dropped_error(text: str, cause: TrackingPlanViolation) -> DeliveryError:
    error = DeliveryError(text)
    error.__cause__ = cause
    return error
