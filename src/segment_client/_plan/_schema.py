"""The JSON Schema subset compiler (the interpreter): one rule's schema -> a checker
built from nested closures, compiled once at load time, that lists every violation.
It is the reference the generated validators (`_codegen`) agree with, and what explains
a message they do not accept. Checkers are pure functions, safe from any thread.

Supported subset (draft-07 semantics): `type` (a name or a list of names), `required`,
`properties`, `additionalProperties` (boolean or schema), `enum`, `const`, `pattern`,
`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`,
`items` (one schema), `minItems`, `maxItems`, `format` (`date-time` and `date` are
checked; other formats are annotations). Annotations (`description`, `title`, `$schema`,
`$id`, `id`, `key`, `default`, `examples`, ...) are ignored. Keywords that would change
what is valid but are not supported (`$ref`, `anyOf`, `oneOf`, `allOf`, `not`, `if`,
`patternProperties`, `multipleOf`, `uniqueItems`, ...) make loading fail with a
`PlanError` naming the rule and the keyword's place, never silently pass.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from ._errors import PlanError

__all__ = ["Check"]


#: value -> None when it is valid, else (relative path, problem) pairs ("" = the value).
Check = Callable[[Any], "list[tuple[str, str]] | None"]
#: A part of a checker that runs for one JSON kind of value.
_Part = Callable[[Any], "list[tuple[str, str]] | None"]

_MISSING = object()

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
        # Every compiled schema object by id(): the code generator reuses these checks
        # for what it hands back to the interpreter (the schema tree outlives the compile,
        # so the ids stay unique).
        self.nodes: dict[int, _Node] = {}

    def fail(self, at: str, problem: str) -> PlanError:
        return PlanError(f"{self.where}: schema at {at or '(root)'}: {problem}")

    def compile(self, schema: Any, at: str = "") -> Check | None:
        """A checker for `schema`, or None when it accepts anything."""
        node = self.node(schema, at)
        return None if node is None else node.check

    def node(self, schema: Any, at: str) -> _Node | None:
        found = self._node(schema, at)
        if found is not None:
            self.nodes[id(schema)] = found
        return found

    def _node(self, schema: Any, at: str) -> _Node | None:
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
        try:
            return ("number", float(value))
        except OverflowError:  # an int past float range: equal to no float, only itself
            return ("number", value)
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
