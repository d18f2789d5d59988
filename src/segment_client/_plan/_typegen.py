"""Typed event functions from a tracking plan (a Python Typewriter).

`segment-client typegen PLAN.json -o analytics_events.py` writes a module with one
function per track event (keyword arguments typed from the event's JSON Schema: required
ones without defaults, optional ones defaulting to None and omitted when None; nested
objects as TypedDicts; enums as Literal) and `identify` / `group` helpers from the traits
schemas. Each function calls the `Client` it is given. The output passes
`mypy --strict` and `ruff`, so a misspelt event, a missing required property or a
wrong type is caught before the code runs.

Pure functions; `main` reads and writes files (blocking).
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from segment_client._version import __version__

from ._errors import PlanError
from ._loaders import load_plan
from ._rules import Rule, TrackingPlan

__all__ = ["add_parser", "generate", "main"]

_MAX_LINE = 100
# Names the generated functions use themselves, or that would shadow what their
# signatures and bodies refer to.
_CALL_ARGS = ("user_id", "anonymous_id", "context", "timestamp", "integrations", "message_id")
_RESERVED = frozenset({
    "client", "group_id", "properties", "traits", "extra_properties", "extra_traits",
    "str", "int", "float", "bool", "dict", "list", "dt", "Any", "Literal", "TypedDict",
    "Client", "None", *_CALL_ARGS,
})
_LITERAL_TYPES = (str, int, bool, type(None))


def _snake(name: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    if not text:
        text = "value"
    if text[0].isdigit():
        text = f"p_{text}"
    return text


def _pascal(name: str) -> str:
    parts = re.split(r"[^0-9A-Za-z]+", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name))
    text = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if not text:
        text = "Value"
    if text[0].isdigit():
        text = f"T{text}"
    return text


def _unique(base: str, taken: set[str]) -> str:
    name = base
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in _RESERVED:
        name = f"{name}_"
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}_{n}"
        n += 1
    taken.add(candidate)
    return candidate


def _doc(text: str, indent: str) -> list[str]:
    """Docstring lines (without quotes) wrapped to fit, safe to embed."""
    text = " ".join(text.replace("\\", "/").replace('"""', "'''").split())
    if not text:
        return []
    width = _MAX_LINE - len(indent) - 4
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False) or [text]


def _lit(value: Any) -> str:
    """A Python literal for a JSON scalar (JSON string escapes are valid in Python)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


class _Generator:
    def __init__(self, plan: TrackingPlan, source: str) -> None:
        self.plan = plan
        self.source = source
        self.classes: list[str] = []
        self.class_names: set[str] = set()
        self.function_names: set[str] = {"identify", "group"}
        self.uses: set[str] = set()

    # -- types ------------------------------------------------------------------------

    def py_type(self, schema: Any, hint: str) -> str:
        if not isinstance(schema, Mapping) or not schema:
            self.uses.add("Any")
            return "Any"
        enum = schema.get("enum")
        if "const" in schema:
            enum = [schema["const"]]
        if isinstance(enum, list) and enum and all(
            isinstance(v, _LITERAL_TYPES) for v in enum
        ):
            values = [v for v in enum if v is not None]
            parts = []
            if values:
                self.uses.add("Literal")
                parts.append(f"Literal[{', '.join(_lit(v) for v in values)}]")
            if len(values) < len(enum):
                parts.append("None")
            return " | ".join(parts)
        raw = schema.get("type")
        names = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
        if not names:
            self.uses.add("Any")
            return "Any"
        parts = []
        for name in names:
            parts.extend(self.one_type(name, schema, hint))
        unique = list(dict.fromkeys(parts))
        if "None" in unique:  # None last reads best: `str | None`
            unique = [p for p in unique if p != "None"] + ["None"]
        return " | ".join(unique)

    def one_type(self, name: str, schema: Mapping[str, Any], hint: str) -> list[str]:
        if name == "string":
            fmt = schema.get("format")
            if fmt == "date-time":
                self.uses.add("dt")
                return ["str", "dt.datetime"]
            if fmt == "date":
                self.uses.add("dt")
                return ["str", "dt.date"]
            return ["str"]
        if name == "integer":
            return ["int"]
        if name == "number":
            return ["float"]
        if name == "boolean":
            return ["bool"]
        if name == "null":
            return ["None"]
        if name == "array":
            items = schema.get("items")
            return [f"list[{self.py_type(items, hint + ' item')}]"]
        if name == "object":
            props = schema.get("properties")
            if isinstance(props, Mapping) and props:
                return [self.typed_dict(schema, hint)]
            self.uses.add("Any")
            return ["dict[str, Any]"]
        self.uses.add("Any")
        return ["Any"]

    def typed_dict(self, schema: Mapping[str, Any], hint: str) -> str:
        name = _unique(_pascal(hint), self.class_names)
        props: Mapping[str, Any] = schema["properties"]
        required = set(schema.get("required") or [])
        fields = [(str(k), self.py_type(v, f"{hint} {k}"), str(k) in required, v)
                  for k, v in props.items()]
        self.uses.add("TypedDict")
        doc = _doc(str(schema.get("description") or f"Shape of {hint!s}."), "    ")
        lines: list[str] = []
        identifiers = all(
            f[0].isidentifier() and not keyword.iskeyword(f[0]) for f in fields
        )
        req = [f for f in fields if f[2]]
        opt = [f for f in fields if not f[2]]
        if identifiers:
            if req and opt:
                base = _unique(f"_{name}Required", self.class_names)
                lines.append(f"class {base}(TypedDict):")
                lines.extend(self.class_doc([f"The required keys of {name}."]))
                lines.extend(self.fields(req))
                lines += ["", ""]
                lines.append(f"class {name}({base}, total=False):")
            else:
                lines.append(f"class {name}(TypedDict{'' if req else ', total=False'}):")
            lines.extend(self.class_doc(doc))
            lines.extend(self.fields(opt if req and opt else fields))
        else:
            bases = []
            for suffix, group, total in (("Required", req, ""), ("Optional", opt, "total=False")):
                if not group:
                    continue
                base = _unique(f"_{name}{suffix}", self.class_names)
                bases.append(base)
                lines.append(f"{base} = TypedDict(")
                lines.append(f'    "{base}",')
                lines.append("    {")
                for key, annotation, _, _ in group:
                    lines.append(f"        {_lit(key)}: {annotation},")
                lines.append("    },")
                if total:
                    lines.append(f"    {total},")
                lines.append(")")
                lines.append("")
                lines.append("")
            if len(bases) == 1:
                lines.append(f"class {name}({bases[0]}):")
            else:
                lines.append(f"class {name}(")
                lines.extend(f"    {base}," for base in bases)
                lines.append("):")
            lines.extend(self.class_doc(doc))
        self.classes.append("\n".join(lines))
        return name

    @staticmethod
    def class_doc(doc: list[str]) -> list[str]:
        if len(doc) == 1:
            return [f'    """{doc[0]}"""']
        return ['    """' + doc[0], *(f"    {line}" for line in doc[1:]), '    """']

    def fields(self, fields: list[tuple[str, str, bool, Any]]) -> list[str]:
        lines = [""]
        for key, annotation, _, sub in fields:
            comment = self.field_comment(sub)
            if comment and len(lines) > 1:
                lines.append("")
            lines.extend(comment)
            lines.append(f"    {key}: {annotation}")
        return lines

    @staticmethod
    def field_comment(schema: Any) -> list[str]:
        if not isinstance(schema, Mapping) or not schema.get("description"):
            return []
        return [f"    # {line}" for line in _doc(str(schema["description"]), "    # ")]

    # -- functions --------------------------------------------------------------------

    def function(self, rule: Rule) -> str:
        payload = rule.payload
        field_name = "properties" if rule.kind == "track" else "traits"
        if rule.kind == "track":
            assert rule.key is not None
            fname = _snake(rule.key)
            if fname in self.function_names:
                fname = f"{fname}_event"
            fname = _unique(fname, self.function_names)
            hint = rule.key
        else:
            fname = rule.kind
            hint = f"{rule.kind} traits"
        props = payload.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = set(payload.get("required") or [])
        open_ended = payload.get("additionalProperties", True) is not False
        taken: set[str] = set()
        params: list[tuple[str, str, str, bool]] = []  # (param, key, annotation, required)
        for key, sub in props.items():
            param = _unique(_snake(str(key)), taken)
            params.append((param, str(key), self.py_type(sub, f"{hint} {key}"), key in required))
        extra = f"extra_{field_name}"
        self.uses.add("Any")

        sig = ["    client: Client,"]
        if rule.kind == "group":
            sig += ["    user_id: str | None,", "    group_id: str,"]
        else:
            sig += ["    user_id: str | None = None,"]
        sig.append("    *,")
        for param, _, annotation, is_required in params:
            if is_required:
                sig.append(f"    {param}: {annotation},")
            elif annotation.endswith("| None") or annotation == "None":
                sig.append(f"    {param}: {annotation} = None,")
            elif annotation == "Any":
                sig.append(f"    {param}: Any = None,")
            else:
                sig.append(f"    {param}: {annotation} | None = None,")
        if open_ended:
            sig.append(f"    {extra}: dict[str, Any] | None = None,")
        self.uses.add("dt")
        sig += [
            "    anonymous_id: str | None = None,",
            "    context: dict[str, Any] | None = None,",
            "    timestamp: dt.datetime | str | None = None,",
            "    integrations: dict[str, Any] | None = None,",
            "    message_id: str | None = None,",
        ]

        what = {"track": f"Track {_lit(rule.key)}", "identify": "Identify a user",
                "group": "Associate a user with a group"}[rule.kind]
        summary = f"{what}. Rule: {rule.label}."
        doc = _doc(summary + (" " + rule.description if rule.description else ""), "    ")
        if params:
            note = "Optional arguments left as None are not sent."
            renamed = [f"{p[0]} -> {_lit(p[1])}" for p in params if p[0] != p[1]]
            if renamed:
                note += f" Keys of {field_name}: " + ", ".join(renamed) + "."
            doc += ["", *_doc(note, "    ")]
        body = [f"def {fname}(", *sig, ") -> str:"]
        body += self.class_doc(doc)
        fixed = [p for p in params if p[3]]
        optional = [p for p in params if not p[3]]
        if fixed:
            body.append(f"    {field_name}: dict[str, Any] = {{")
            body += [f"        {_lit(key)}: {param}," for param, key, _, _ in fixed]
            body.append("    }")
        else:
            body.append(f"    {field_name}: dict[str, Any] = {{}}")
        for param, key, _, _ in optional:
            body.append(f"    if {param} is not None:")
            body.append(f"        {field_name}[{_lit(key)}] = {param}")
        if open_ended:
            body.append(f"    if {extra}:")
            body.append(f"        {field_name} = {{**{extra}, **{field_name}}}")
        args = {
            "track": ["user_id", _lit(rule.key), field_name],
            "identify": ["user_id", field_name],
            "group": ["user_id", "group_id", field_name],
        }[rule.kind] + ["context", "timestamp"]
        args += ["anonymous_id", "integrations", "message_id"]
        call = [f"    return client.{rule.kind}(", *(f"        {a}," for a in args), "    )"]
        return "\n".join(body + call)

    def module(self) -> str:
        functions = [self.function(rule) for rule in self.plan.rules]
        title = f"tracking plan {self.plan.name!r}" if self.plan.name else "a tracking plan"
        header = [
            f"# Generated by segment-client typegen {__version__} from {self.source}.",
            "# Do not edit: change the tracking plan and regenerate.",
            '"""Typed analytics calls for ' + title.replace('"', "'") + ".",
            "",
            *_doc(
                "One function per planned event, plus identify/group helpers when the plan "
                "has traits rules. Each takes the segment_client.Client to call first.",
                "",
            ),
            '"""',
            "",
            "from __future__ import annotations",
            "",
        ]
        stdlib = []
        if "dt" in self.uses:
            stdlib.append("import datetime as dt")
        names = sorted(n for n in ("Any", "Literal", "TypedDict") if n in self.uses)
        if names:
            stdlib.append(f"from typing import {', '.join(names)}")
        body = self.classes + functions
        if not body:  # a plan without rules: a valid module with nothing to import
            text = "\n".join(header).rstrip() + "\n"
        else:
            imports = "\n".join(header + stdlib + ["", "from segment_client import Client"])
            # isort style: two blank lines after imports before a class/def, else one.
            gap = "\n\n\n" if body[0].startswith(("class ", "def ")) else "\n\n"
            text = imports + gap + "\n\n\n".join(body) + "\n"
        lines = [line.rstrip() for line in text.split("\n")]
        return "\n".join(
            line + "  # noqa: E501" if len(line) > _MAX_LINE else line for line in lines
        )


def generate(plan: TrackingPlan | Mapping[str, Any] | str | Path, *, source: str = "") -> str:
    """Return the source of the typed module for `plan` (`source` names it in the header)."""
    loaded = load_plan(plan)
    label = source or (Path(loaded.source).name if loaded.source else "a tracking plan")
    return _Generator(loaded, label).module()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the `typegen` subcommand on an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "typegen", help="generate typed event functions from a tracking plan",
        description="Write a Python module with a typed function per tracking-plan event.",
    )
    _configure(parser)
    return parser


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="the tracking plan JSON (Segment export or native form)")
    parser.add_argument(
        "-o", "--output", default="-", help="the module to write (default: standard output)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        code = generate(args.plan, source=Path(args.plan).name)
    except PlanError as exc:
        print(f"segment-client typegen: {exc}", file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.write(code)
    else:
        Path(args.output).write_text(code, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`segment-client typegen PLAN.json -o OUT.py`; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="segment-client typegen",
        description="Write a Python module with a typed function per tracking-plan event.",
    )
    _configure(parser)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result
