"""Loading tracking plans: Segment's Public API export, the Config API / Typewriter
`plan.json`, and the native form, each turned into compiled `Rule`s. `load_plan` reads
a file (blocking); the rest are pure functions."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._codegen import compile_rule
from ._errors import PlanError
from ._rules import Rule, TrackingPlan

__all__ = ["load_plan"]

logger = logging.getLogger("segment_client")


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
        logger.debug("tracking plan rule not enforced: %s", item)
    return TrackingPlan(rules, name=name, source=where, ignored=ignored)


def _rule(
    kind: str, key: str | None, schema: dict[str, Any], *, where: str,
    version: int | None = None, description: str = "",
) -> Rule:
    """A rule with its interpreter check and its generated validator."""
    check, valid = compile_rule(schema, where)
    return Rule(kind, key, schema, version=version, description=description, check=check,
                valid=valid)


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
        rules.append(_rule(
            kind, key if kind == "track" else None, schema,
            version=_version(item.get("version"), where),
            description=str(schema.get("description") or item.get("description") or ""),
            where=where,
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
        rules.append(_rule(
            "track", name, schema, version=_version(item.get("version"), where),
            description=str(item.get("description") or schema.get("description") or ""),
            where=where,
        ))
    for kind in ("identify", "group"):
        raw = data.get(kind)
        if raw is None or raw == {}:
            continue
        where = f"rule rules.{kind}"
        schema = _schema(raw, where)
        rules.append(_rule(kind, None, schema, description=str(schema.get("description") or ""),
                          where=where))
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
        rules.append(_rule(
            "track", name, schema, version=_version(spec.get("version"), where),
            description=str(spec.get("description") or ""),
            where=where,
        ))
    for kind in ("identify", "group"):
        if data.get(kind) is None:
            continue
        where = f"rule {kind}"
        payload = _native_payload(data[kind], "traits", where)
        schema = _message_schema("traits", payload)
        rules.append(_rule(
            kind, None, schema, description=str(data[kind].get("description") or ""),
            where=where,
        ))
    return rules


def _message_schema(field_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {field_name: payload}, "required": [field_name]}
