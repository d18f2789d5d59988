"""The destinations file: the workspace's destinations and their filters, checked.

A destinations file is TOML or JSON with one list, `destinations`; each entry names a
destination and may carry `enabled` and `filters` (Segment's destination-filter ideas:
drop, allow-only, sample, drop or allow properties, each with an optional condition).
`parse_destinations` checks every field and names the first one that is wrong, so a typo
never silently routes everything everywhere. Pure data: no threads, no I/O but `load`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ACTIONS",
    "OPERATORS",
    "Condition",
    "Destination",
    "DestinationsError",
    "Filter",
    "Match",
    "load_destinations",
    "parse_destinations",
]

# The order Segment applies filter kinds in: drop decisions, then sampling, then fields.
ACTIONS = ("drop", "allow", "sample", "drop_properties", "allow_properties")
OPERATORS = (
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "missing",
    "contains", "matches",
)
_VALUELESS = frozenset({"exists", "missing"})
_LIST_VALUED = frozenset({"in", "not_in"})
# Segment filters fields only inside these top-level objects.
_FIELD_ROOTS = ("properties", "context", "traits")
MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
# "Segment.io" names the pipeline itself in an integrations object, "All" the default.
_RESERVED_NAMES = frozenset({"All", "Segment.io"})


class DestinationsError(ValueError):
    """A destinations file that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Condition:
    """One test of a message field: `field` (dotted path), `op`, `value`."""

    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Match:
    """Which messages a filter applies to: every given part must hold (empty: all)."""

    types: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    where: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Filter:
    """One destination filter. `percent` and `by` for sample; `fields` for properties."""

    action: str
    name: str
    match: Match = field(default_factory=Match)
    percent: float = 100.0
    by: str = "messageId"
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Destination:
    """A destination of the workspace, as the destinations file names it."""

    name: str
    enabled: bool = True
    filters: tuple[Filter, ...] = ()


def load_destinations(path: str | Path) -> list[Destination]:
    """Read and check a destinations file (`.toml` or `.json`). Blocking file read.

    Raises DestinationsError (naming the file and field) or OSError.
    """
    path = Path(path)
    text = path.read_bytes()
    if path.suffix.lower() == ".toml":
        data = _load_toml(path, text)
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DestinationsError(f"{path}: not valid JSON: {exc}") from None
    try:
        return parse_destinations(data)
    except DestinationsError as exc:
        raise DestinationsError(f"{path}: {exc}") from None


def _load_toml(path: Path, text: bytes) -> Any:
    try:
        import tomllib as toml  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as toml  # type: ignore[no-redef,import-not-found,unused-ignore]
        except ModuleNotFoundError:
            raise DestinationsError(
                f"{path}: reading TOML needs Python 3.11+ or the tomli package "
                "(pip install tomli); or write the file as JSON"
            ) from None
    try:
        return toml.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DestinationsError(f"{path}: not valid TOML: {exc}") from None


def parse_destinations(data: Any) -> list[Destination]:
    """Check a parsed destinations document and build its destinations.

    Raises DestinationsError naming the first wrong field, e.g.
    `destinations[1].filters[0].percent: expected a number from 0 to 100, got 150`.
    """
    if not isinstance(data, Mapping):
        raise DestinationsError(
            f"expected an object with a `destinations` list, got {type(data).__name__}"
        )
    _only(data, {"destinations"}, "")
    items = _list(data.get("destinations", []), "destinations")
    destinations: list[Destination] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"destinations[{index}]"
        destination = _destination(item, where)
        if destination.name in seen:
            raise DestinationsError(f"{where}.name: {destination.name!r} is named twice")
        seen.add(destination.name)
        destinations.append(destination)
    return destinations


def _only(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        prefix = f"{where}: " if where else ""
        raise DestinationsError(
            f"{prefix}unknown key {unknown[0]!r} (expected one of {', '.join(sorted(allowed))})"
        )


def _object(item: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise DestinationsError(f"{where}: expected an object, got {type(item).__name__}")
    return item


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise DestinationsError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _destination(item: Any, where: str) -> Destination:
    item = _object(item, where)
    _only(item, {"name", "enabled", "filters"}, where)
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DestinationsError(f"{where}.name: expected a non-empty string, got {name!r}")
    if name in _RESERVED_NAMES:
        raise DestinationsError(
            f"{where}.name: {name!r} is reserved in the integrations object "
            "(All is the default, Segment.io the pipeline itself)"
        )
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise DestinationsError(f"{where}.enabled: expected true or false, got {enabled!r}")
    filters = _list(item.get("filters", []), f"{where}.filters")
    return Destination(
        name=name,
        enabled=enabled,
        filters=tuple(_filter(f, f"{where}.filters[{i}]", i) for i, f in enumerate(filters)),
    )


def _filter(item: Any, where: str, index: int) -> Filter:
    item = _object(item, where)
    action = item.get("action")
    if action not in ACTIONS:
        raise DestinationsError(
            f"{where}.action: expected one of {', '.join(ACTIONS)}, got {action!r}"
        )
    allowed = {"action", "name", "match"}
    if action == "sample":
        allowed |= {"percent", "by"}
    if action in ("drop_properties", "allow_properties"):
        allowed |= {"fields"}
    _only(item, allowed, where)
    name = item.get("name", f"#{index + 1} {action}")
    if not isinstance(name, str) or not name:
        raise DestinationsError(f"{where}.name: expected a non-empty string, got {name!r}")
    match = _match(item.get("match", {}), f"{where}.match")
    percent = 100.0
    by = "messageId"
    fields: tuple[str, ...] = ()
    if action == "sample":
        percent = item.get("percent")
        if (
            isinstance(percent, bool)
            or not isinstance(percent, (int, float))
            or not 0 <= percent <= 100
        ):
            raise DestinationsError(
                f"{where}.percent: expected a number from 0 to 100, got {percent!r}"
            )
        by = item.get("by", "messageId")
        if not isinstance(by, str) or not by:
            raise DestinationsError(f"{where}.by: expected a field path, got {by!r}")
    if action in ("drop_properties", "allow_properties"):
        fields = _fields(item.get("fields"), f"{where}.fields")
    return Filter(action=action, name=name, match=match, percent=float(percent), by=by,
                  fields=fields)


def _strings(value: Any, where: str, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(
        isinstance(v, str) for v in values
    ):
        raise DestinationsError(f"{where}: expected a string or a list of strings, got {value!r}")
    if allowed is not None:
        for v in values:
            if v not in allowed:
                raise DestinationsError(
                    f"{where}: expected one of {', '.join(allowed)}, got {v!r}"
                )
    return tuple(values)


def _match(item: Any, where: str) -> Match:
    item = _object(item, where)
    _only(item, {"type", "event", "where"}, where)
    types = _strings(item["type"], f"{where}.type", MESSAGE_TYPES) if "type" in item else ()
    events = _strings(item["event"], f"{where}.event") if "event" in item else ()
    conditions = item.get("where", [])
    if not isinstance(conditions, list):
        raise DestinationsError(f"{where}.where: expected a list of conditions")
    return Match(
        types=types,
        events=events,
        where=tuple(_condition(c, f"{where}.where[{i}]") for i, c in enumerate(conditions)),
    )


def _condition(item: Any, where: str) -> Condition:
    item = _object(item, where)
    _only(item, {"field", "op", "value"}, where)
    path = item.get("field")
    if not isinstance(path, str) or not path or "" in path.split("."):
        raise DestinationsError(
            f"{where}.field: expected a dotted path like properties.plan, got {path!r}"
        )
    op = item.get("op", "eq")
    if op not in OPERATORS:
        raise DestinationsError(f"{where}.op: expected one of {', '.join(OPERATORS)}, got {op!r}")
    if op in _VALUELESS:
        if "value" in item:
            raise DestinationsError(f"{where}.value: {op} takes no value")
        return Condition(path, op)
    if "value" not in item:
        raise DestinationsError(f"{where}.value: {op} needs a value")
    value = item["value"]
    if op in _LIST_VALUED and not isinstance(value, list):
        raise DestinationsError(f"{where}.value: {op} needs a list, got {value!r}")
    if op in ("gt", "gte", "lt", "lte") and (
        isinstance(value, bool) or not isinstance(value, (int, float, str))
    ):
        raise DestinationsError(f"{where}.value: {op} needs a number or a string, got {value!r}")
    if op in ("contains", "matches") and not isinstance(value, str):
        raise DestinationsError(f"{where}.value: {op} needs a string, got {value!r}")
    return Condition(path, op, value)


def _fields(value: Any, where: str) -> tuple[str, ...]:
    paths = _strings(value, where)
    for path in paths:
        parts = path.split(".")
        if len(parts) < 2 or parts[0] not in _FIELD_ROOTS or "" in parts:
            raise DestinationsError(
                f"{where}: {path!r} must name a field inside "
                f"{', '.join(_FIELD_ROOTS)} (e.g. properties.email)"
            )
    return paths
