"""Validators generated as Python source: one function per rule, written and compiled
once at load time, that answers "does this message certainly follow the rule?".

The closure interpreter (`_schema`) stays the reference: it alone writes violations. A
generated validator returns True only for a message the interpreter accepts; on False
the caller runs the interpreter, so the violations (paths, messages, rule names) are the
interpreter's by construction. What the generator does not write inline goes to the
interpreter's check of that sub-schema, from inside the generated code:

- values of any class other than str, int, float, bool, None, dict, list and datetime
  (Decimal, tuples, enum members, subclasses, dates, Mappings ...), where the
  interpreter's conversions decide;
- a float where only "integer" is allowed, and int or float values against enum/const
  (exact numeric equality and overflow are the interpreter's);
- sub-schemas nested deeper than `MAX_DEPTH` (the generated function stays small and
  within Python's nesting limits).

The code is the common path made cheap: a present, valid property costs a lookup and a
class test (a required one is a subscript; a missing one raises KeyError, answered with
False), bounds and lengths are comparisons, patterns and formats call the compiled
regex, enums test set membership, and `additionalProperties: false` is one
`issuperset`.

Plan text never becomes code: property names appear as `repr()` of exact `str` objects
(a string literal by definition), integer bounds as `repr()` of exact small ints, and
every other constant (patterns, sets, bounds, interpreter checks) is an argument of the
generated factory; no plan text goes into comments. The generated namespace has no
builtins. The generated functions are pure: safe from any thread.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._schema import _DATE, _DATE_TIME, Check, _Compiler, _enum_key, _Node

__all__ = ["MAX_DEPTH", "Generated", "Valid", "compile_rule", "generate"]

#: message -> True when it certainly follows the rule (False: ask the interpreter).
Valid = Callable[[Any], bool]
#: A test seam: wraps each interpreter check the generated code calls (path, check).
Delegate = Callable[[str, Check], Check]

#: Schema nesting written inline; deeper sub-schemas are checked by the interpreter.
MAX_DEPTH = 12

_MISSING = object()
_NUMBER_BOUNDS = (
    ("minimum", "<"), ("maximum", ">"), ("exclusiveMinimum", "<="), ("exclusiveMaximum", ">="),
)
# Names the generated code may use besides its own v/c/k/_k identifiers.
_FIXED: dict[str, Any] = {
    "_M": _MISSING, "_len": len, "_str": str, "_int": int, "_float": float, "_bool": bool,
    "_dict": dict, "_list": list, "_datetime": dt.datetime, "_KeyError": KeyError,
}


@dataclass(frozen=True)
class Generated:
    """A generated validator, its source (for tests and debugging) and the places where
    it hands a whole sub-schema to the interpreter (`path: reason`)."""

    valid: Valid
    source: str
    fallbacks: tuple[str, ...]


def compile_rule(schema: Any, where: str) -> tuple[Check | None, Valid]:
    """The interpreter's check for one rule's whole-message `schema` and its generated
    validator. Raises `PlanError` prefixed with `where` on a bad schema."""
    compiler = _Compiler(where)
    check = compiler.compile(schema)
    return check, generate(schema, compiler.nodes).valid


def _always(message: Any) -> bool:
    return True


def generate(
    schema: Any, nodes: Mapping[int, _Node], *, delegate: Delegate | None = None
) -> Generated:
    """Write and compile the validator for `schema`, already compiled by the interpreter
    into `nodes` (by id of each sub-schema). `delegate` wraps the interpreter checks the
    generated code calls (tests count them)."""
    writer = _Writer(nodes, delegate)
    writer.emit(schema, "v0", "", 1, 0)
    if not writer.lines:
        return Generated(_always, "", ())
    names = [*_FIXED, *writer.const_names]
    # The constants reach the function as closure cells (keyword-only defaults would be
    # filled from a dict at every call).
    source = "\n".join([
        f"def _factory({', '.join(names)}):",
        "    def valid(v0):",
        "        try:",
        *("        " + line for line in writer.lines),
        "        except _KeyError:",  # a required property is missing
        "            return False",
        "        return True",
        "    return valid",
        "",
    ])
    namespace: dict[str, Any] = {"__builtins__": {}}
    # Safe to run: the source holds identifiers of our own, str/int literals from repr()
    # and nothing else from the plan (see the module docstring).
    exec(_code(source), namespace)
    valid = namespace["_factory"](*_FIXED.values(), *writer.consts)
    return Generated(valid, source, tuple(writer.fallbacks))


@functools.lru_cache(maxsize=512)
def _code(source: str) -> Any:
    # Plans loaded again (each Client, the CLI, tests) and rules of the same shape share
    # the compiled code; the constants differ and are bound per validator.
    return compile(source, "<tracking plan validator>", "exec")


def _literal(value: Any) -> str | None:
    """Python source for `value` when it is certainly a short literal (an exact str, or
    an exact int of at most 18 digits); None: pass it as a constant."""
    if type(value) is str or (type(value) is int and -10**18 < value < 10**18):
        return repr(value)
    return None


class _Writer:
    """Accumulates the body of one generated function."""

    def __init__(self, nodes: Mapping[int, _Node], delegate: Delegate | None) -> None:
        self.nodes = nodes
        self.delegate = delegate
        self.lines: list[str] = []
        self.consts: list[Any] = []
        self.const_names: list[str] = []
        self.fallbacks: list[str] = []
        self.serial = 0

    def const(self, value: Any) -> str:
        name = f"_k{len(self.consts)}"
        self.consts.append(value)
        self.const_names.append(name)
        return name

    def fresh(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def out(self, indent: int, text: str) -> None:
        for line in text.split("\n"):
            self.lines.append("    " * indent + line)

    def interpreter(self, schema: Any, at: str) -> str:
        """A constant naming the interpreter's check for `schema`."""
        check = self.nodes[id(schema)].check
        if self.delegate is not None:
            check = self.delegate(at, check)
        return self.const(check)

    def hand_over(
        self, schema: Any, var: str, at: str, indent: int, missing: str, reason: str
    ) -> None:
        self.fallbacks.append(f"{at or '(message)'}: {reason}")
        call = f"{self.interpreter(schema, at)}({var})"
        self.out(indent, f"if {_guard(var, missing, call)}:")
        self.out(indent + 1, "return False")

    def emit(
        self, schema: Any, var: str, at: str, indent: int, depth: int, missing: str = ""
    ) -> None:
        """Statements that return False unless `var` certainly satisfies `schema`.

        `missing`: "" (var holds a value) or "optional" (var is `_M` when the property
        is absent): folded into the rare branch, so that a present, valid property costs
        one lookup and one class test.
        """
        if schema is True or id(schema) not in self.nodes:
            return  # accepts anything (the interpreter compiled nothing for it)
        if schema is False:
            self.out(indent, "return False" if not missing else
                     f"if {var} is not _M:\n    return False")
            return
        if depth > MAX_DEPTH:
            self.hand_over(schema, var, at, indent, missing, f"nested deeper than {MAX_DEPTH}")
            return
        raw = schema.get("type")
        types = None if raw is None else frozenset([raw] if isinstance(raw, str) else raw)
        enum: _EnumKeys | None = None
        if "enum" in schema or "const" in schema:
            enum = _EnumKeys.of(schema["enum"] if "enum" in schema else [schema["const"]])

        def allows(kind: str) -> bool:
            return types is None or kind in types

        # Per exact class: None = the interpreter decides, [] = valid, else the checks.
        plan: list[tuple[str, list[str] | None]] = []
        sub = _Writer(self.nodes, self.delegate)
        sub.consts, sub.const_names, sub.fallbacks = self.consts, self.const_names, self.fallbacks

        def body(fill: Callable[[_Writer], None]) -> list[str]:
            sub.lines = []
            sub.serial = self.serial
            fill(sub)
            self.serial = sub.serial
            return sub.lines

        if allows("string"):
            plan.append(("_str", body(lambda w: w.string(schema, var, enum))))
            plan.append(("_datetime", None if enum is not None else []))
        if (allows("integer") or allows("number")) and enum is None:
            numbers = body(lambda w: w.number(schema, var))
            floats = numbers if allows("number") else None
            if types is not None and "number" in types:  # floats first: the usual value
                plan += [("_float", floats), ("_int", numbers)]
            else:
                plan += [("_int", numbers), ("_float", floats)]
        if allows("object") and enum is None:
            plan.append(("_dict", body(lambda w: w.object(schema, var, at, depth))))
        if allows("array") and enum is None:
            plan.append(("_list", body(lambda w: w.array(schema, var, at, depth))))
        if allows("boolean"):
            if enum is None:
                plan.append(("_bool", []))
            elif enum.booleans:
                plan.append(("_bool", body(lambda w: w.out(
                    0, f"if {var} not in {w.const(enum.booleans)}:\n    return False"))))
        if allows("null") and (enum is None or enum.null):
            plan.append(("None", []))
        self.branches(
            schema, var, at, indent, missing, [(c, b) for c, b in plan if b is not None]
        )

    def branches(
        self, schema: Any, var: str, at: str, indent: int, missing: str,
        plan: list[tuple[str, list[str]]],
    ) -> None:
        checked = [(cls, lines) for cls, lines in plan if lines]
        valid = [cls for cls, lines in plan if not lines]
        # `var.__class__` at each test, not a local: the first test is the common class.
        cls_of = f"{var}.__class__"

        def test(cls: str, negate: bool) -> str:
            if cls == "None":
                return f"{var} is {'not ' if negate else ''}None"
            return f"{cls_of} is {'not ' if negate else ''}{cls}"

        keyword = "if"
        groups: list[tuple[list[str], list[str]]] = []
        for cls, lines in checked:  # one branch for classes with the same checks (int, float)
            if groups and groups[-1][1] is lines:
                groups[-1][0].append(cls)
            else:
                groups.append(([cls], lines))
        for classes, lines in groups:
            self.out(indent, f"{keyword} {' or '.join(test(cls, False) for cls in classes)}:")
            pad = "    " * (indent + 1)
            self.lines.extend(pad + line for line in lines)
            keyword = "elif"
        rest = [test(cls, True) for cls in valid]
        call = _guard(var, missing, f"{self.interpreter(schema, at)}({var})")
        self.out(indent, f"{keyword} {' and '.join([*rest, call])}:")
        self.out(indent + 1, "return False")

    # -- the checks per JSON kind (the writer's lines are relative to indent 0) ----------

    def string(self, schema: Mapping[str, Any], var: str, enum: _EnumKeys | None) -> None:
        if enum is not None:
            self.fail_if(f"{var} not in {self.const(enum.strings)}")
        pattern = schema.get("pattern")
        if pattern is not None:
            # The interpreter compiled it already (a valid pattern; re caches it).
            regex = re.compile(pattern)
            self.fail_if(f"{self.const(_matcher(pattern, regex))}({var}) is None")
        for keyword, op in (("minLength", "<"), ("maxLength", ">")):
            if schema.get(keyword) is not None:
                self.fail_if(f"_len({var}) {op} {self.number_literal(schema[keyword])}")
        fmt = schema.get("format")
        if fmt in ("date-time", "date"):
            match = (_DATE_TIME if fmt == "date-time" else _DATE).match
            self.fail_if(f"{self.const(match)}({var}) is None")

    def number(self, schema: Mapping[str, Any], var: str) -> None:
        for keyword, op in _NUMBER_BOUNDS:
            if schema.get(keyword) is not None:
                self.fail_if(f"{var} {op} {self.number_literal(schema[keyword])}")

    def object(self, schema: Mapping[str, Any], var: str, at: str, depth: int) -> None:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        children = [str(name) for name, sub in props.items() if id(sub) in self.nodes]
        for name in dict.fromkeys(required):
            if name not in children:
                self.fail_if(f"{self.name(name)} not in {var}")
        for name, sub in props.items():
            key = str(name)
            if id(sub) not in self.nodes:
                continue
            child = self.fresh("v")
            path = f"{at}.{key}" if at else key
            if key in required:
                # A subscript is cheaper than get(); a missing one raises KeyError, which
                # the function answers with False.
                self.out(0, f"{child} = {var}[{self.name(key)}]")
                self.emit(sub, child, path, 0, depth + 1)
            else:
                self.out(0, f"{child} = {var}.get({self.name(key)}, _M)")
                self.emit(sub, child, path, 0, depth + 1, "optional")
        extra = schema.get("additionalProperties", True)
        known = frozenset(props)
        if extra is False:
            self.fail_if(f"not {self.const(known)}.issuperset({var})")
        elif extra is not True and id(extra) in self.nodes:
            key, value = self.fresh("k"), self.fresh("v")
            self.out(0, f"for {key} in {var}:")
            self.out(1, f"if {key} not in {self.const(known)}:")
            self.out(2, f"{value} = {var}[{key}]")
            self.emit(extra, value, f"{at}.*" if at else "*", 2, depth + 1)

    def array(self, schema: Mapping[str, Any], var: str, at: str, depth: int) -> None:
        for keyword, op in (("minItems", "<"), ("maxItems", ">")):
            if schema.get(keyword) is not None:
                self.fail_if(f"_len({var}) {op} {self.number_literal(schema[keyword])}")
        items = schema.get("items")
        if items is not None and items is not True and id(items) in self.nodes:
            item = self.fresh("v")
            self.out(0, f"for {item} in {var}:")
            self.emit(items, item, f"{at}[]", 1, depth + 1)

    # -- helpers --------------------------------------------------------------------------

    def fail_if(self, condition: str) -> None:
        self.out(0, f"if {condition}:")
        self.out(1, "return False")

    def name(self, key: Any) -> str:
        return _literal(key) or self.const(key)

    def number_literal(self, value: Any) -> str:
        return _literal(value) or self.const(value)


def _matcher(pattern: str, regex: re.Pattern[str]) -> Callable[[str], object]:
    """`regex.search`, or the cheaper `regex.match` where they agree: a pattern that
    starts with an unquantified `^` and has no alternation and no `(?` construct (inline
    flags, lookbehind) can only match at the start of the string."""
    if (pattern.startswith("^") and pattern[1:2] not in ("?", "*", "+", "{")
            and "|" not in pattern and "(?" not in pattern):
        return regex.match
    return regex.search


def _guard(var: str, missing: str, call: str) -> str:
    """`call` (an interpreter check of `var`) guarded for an absent property."""
    return f"{var} is not _M and {call}" if missing else call


@dataclass(frozen=True)
class _EnumKeys:
    """The allowed values of an enum/const the generated code checks inline, keyed as
    the interpreter keys them (`_enum_key`): strings, booleans, null."""

    strings: frozenset[str]
    booleans: frozenset[bool]
    null: bool

    @staticmethod
    def of(allowed: list[Any]) -> _EnumKeys:
        keys = {_enum_key(value) for value in allowed}  # the interpreter keyed them already
        return _EnumKeys(
            frozenset(v for kind, v in keys if kind == "string" and type(v) is str),
            frozenset(v for kind, v in keys if kind == "boolean" and type(v) is bool),
            ("null", None) in keys,
        )
