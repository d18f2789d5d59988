"""Which destinations receive a message, and why: the integrations object, then filters.

Segment's semantics, in order:

1. `integrations["Segment.io"] is False`: Segment's libraries never send the message, so
   no destination (and no warehouse) gets it. `All: false` does not switch it off.
2. A destination named in `integrations` with `false` is off; named with anything else
   (`true`, an options object) it is on. Keys are case-sensitive. A `null` value counts
   as not named.
3. A destination not named follows `integrations["All"]` (default on).
4. A destination switched off in the destinations file gets nothing.
5. Its filters: drop and allow-only filters (file order; the first that drops decides),
   then sample filters, then drop/allow-properties filters, which change what it gets.

`Router.route(message)` is pure and thread-safe (routers are immutable).
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._config import Condition, Destination, Filter, Match

__all__ = ["Decision", "Router", "Routing", "matches"]

_MISSING = object()


@dataclass(frozen=True)
class Decision:
    """One destination's outcome for one message: `delivered`, a `code` and a `reason`.

    Codes: `default`, `named`, `options` (delivered); `integrations_false`, `all_false`,
    `disabled`, `filter_drop`, `filter_allow`, `sampled_out`, `segment_off` (not).
    `removed` lists the fields property filters took out of what it receives.
    """

    destination: str
    delivered: bool
    code: str
    reason: str
    removed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "destination": self.destination,
            "delivered": self.delivered,
            "code": self.code,
            "reason": self.reason,
        }
        if self.removed:
            data["removed"] = list(self.removed)
        return data


@dataclass(frozen=True)
class Routing:
    """A message's routing: whether Segment receives it, and each destination's decision.

    `unknown` lists integrations keys that name no destination of the file (a typo or a
    wrong case is the usual cause: keys are case-sensitive).
    """

    segment: bool
    decisions: tuple[Decision, ...]
    unknown: tuple[str, ...] = ()

    @property
    def delivered(self) -> list[str]:
        """The destinations that receive the message, in file order."""
        return [d.destination for d in self.decisions if d.delivered]

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "delivered": self.delivered,
            "decisions": [d.to_dict() for d in self.decisions],
            "unknown_integrations": list(self.unknown),
        }


def lookup(message: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path in a message, or `_MISSING`."""
    value: Any = message
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _compare(value: Any, op: str, expected: Any) -> bool:
    try:
        if op == "gt":
            return bool(value > expected)
        if op == "gte":
            return bool(value >= expected)
        if op == "lt":
            return bool(value < expected)
        return bool(value <= expected)
    except TypeError:  # a string against a number: the condition does not hold
        return False


def _holds(condition: Condition, message: Mapping[str, Any]) -> bool:
    value = lookup(message, condition.field)
    op = condition.op
    if op == "exists":
        return value is not _MISSING and value is not None
    if op == "missing":
        return value is _MISSING or value is None
    if value is _MISSING:
        return op in ("ne", "not_in")
    expected = condition.value
    if op == "eq":
        return bool(_same(value, expected))
    if op == "ne":
        return not _same(value, expected)
    if op == "in":
        return any(_same(value, item) for item in expected)
    if op == "not_in":
        return not any(_same(value, item) for item in expected)
    if op == "contains":
        return isinstance(value, str) and expected in value
    if op == "matches":
        return isinstance(value, str) and fnmatch.fnmatchcase(value, expected)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    if isinstance(value, str) != isinstance(expected, str):
        return False
    return _compare(value, op, expected)


def _same(a: Any, b: Any) -> bool:
    """Equality with JSON's types: true is not 1, 1 is 1.0, "1" is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and bool(a == b)


def matches(match: Match, message: Mapping[str, Any]) -> bool:
    """Whether a filter's condition holds for a message (an empty one always does)."""
    if match.types and message.get("type") not in match.types:
        return False
    if match.events and (message.get("type") != "track" or message.get("event") not in
                         match.events):
        return False
    return all(_holds(condition, message) for condition in match.where)


def _bucket(destination: str, key: Any) -> float:
    """A deterministic number in [0, 1) for a destination and a sampling key."""
    digest = hashlib.sha256(f"{destination}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _percent(value: float) -> str:
    return f"{value:g}%"


class Router:
    """Routes messages to a fixed list of destinations. Immutable, thread-safe."""

    def __init__(self, destinations: Iterable[Destination] = ()) -> None:
        self.destinations: tuple[Destination, ...] = tuple(destinations)
        self._names = frozenset(d.name for d in self.destinations)

    @property
    def names(self) -> list[str]:
        """The destinations' names, in file order."""
        return [d.name for d in self.destinations]

    def route(self, message: Mapping[str, Any]) -> Routing:
        """The routing of one message (pure; never raises for any JSON object)."""
        integrations = message.get("integrations")
        if not isinstance(integrations, Mapping):
            integrations = {}
        unknown = tuple(
            sorted(k for k in integrations if k not in self._names and k not in
                   ("All", "Segment.io"))
        )
        if integrations.get("Segment.io") is False:
            reason = 'integrations["Segment.io"] is false: Segment never receives it'
            return Routing(
                segment=False,
                decisions=tuple(
                    Decision(d.name, False, "segment_off", reason) for d in self.destinations
                ),
                unknown=unknown,
            )
        all_on = integrations.get("All") is not False
        return Routing(
            segment=True,
            decisions=tuple(self._decide(d, integrations, all_on, message)
                            for d in self.destinations),
            unknown=unknown,
        )

    def _decide(
        self,
        destination: Destination,
        integrations: Mapping[str, Any],
        all_on: bool,
        message: Mapping[str, Any],
    ) -> Decision:
        name = destination.name
        value = integrations.get(name)
        if value is False:
            return Decision(name, False, "integrations_false", f"integrations[{name!r}] is false")
        if value is None and not all_on:
            return Decision(name, False, "all_false",
                            f"integrations.All is false and {name!r} is not named")
        if not destination.enabled:
            return Decision(name, False, "disabled", "disabled in the destinations file")
        if value is None:
            code, reason = "default", "enabled by default (integrations.All is not false)"
        elif isinstance(value, Mapping):
            code, reason = "options", f"integrations[{name!r}] holds options (counts as on)"
        else:
            code, reason = "named", f"integrations[{name!r}] is {_json_word(value)}"
        dropped = self._dropped(destination, message)
        if dropped is not None:
            return dropped
        removed = _removed_fields(destination.filters, message)
        if removed:
            reason += f"; filters removed {', '.join(removed)}"
        return Decision(name, True, code, reason, removed)

    def _dropped(self, destination: Destination, message: Mapping[str, Any]) -> Decision | None:
        name = destination.name
        for rule in destination.filters:
            if rule.action == "drop" and matches(rule.match, message):
                return Decision(name, False, "filter_drop", f"dropped by filter {rule.name!r}")
            if rule.action == "allow" and not matches(rule.match, message):
                return Decision(name, False, "filter_allow",
                                f"filter {rule.name!r} allows only matching messages")
        for rule in destination.filters:
            if rule.action == "sample" and matches(rule.match, message):
                key = lookup(message, rule.by)
                if key is _MISSING or key is None:
                    key = ""
                if _bucket(name, key) * 100 >= rule.percent:
                    return Decision(
                        name, False, "sampled_out",
                        f"sampled out by filter {rule.name!r} (keeps "
                        f"{_percent(rule.percent)} by {rule.by})",
                    )
        return None

    def apply(self, destination: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """The message as `destination` would receive it (property filters applied).

        A deep copy; the argument is never changed.
        """
        for candidate in self.destinations:
            if candidate.name == destination:
                return _apply_fields(candidate.filters, message)
        raise KeyError(destination)


def _json_word(value: Any) -> str:
    if value is True:
        return "true"
    return repr(value)


def _field_rules(filters: Sequence[Filter], message: Mapping[str, Any]) -> list[Filter]:
    return [
        rule for rule in filters
        if rule.action in ("drop_properties", "allow_properties") and matches(rule.match, message)
    ]


def _removed_fields(filters: Sequence[Filter], message: Mapping[str, Any]) -> tuple[str, ...]:
    rules = _field_rules(filters, message)
    if not rules:
        return ()
    result = _apply_fields(filters, message)
    removed: list[str] = []
    _diff(message, result, "", removed)
    return tuple(removed)


def _diff(before: Any, after: Any, prefix: str, out: list[str]) -> None:
    if not isinstance(before, Mapping):
        return
    for key, value in before.items():
        path = f"{prefix}{key}"
        if not isinstance(after, Mapping) or key not in after:
            out.append(path)
        else:
            _diff(value, after[key], path + ".", out)


def _apply_fields(filters: Sequence[Filter], message: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = copy.deepcopy(dict(message))
    for rule in _field_rules(filters, message):
        if rule.action == "drop_properties":
            for path in rule.fields:
                parent_path, _, key = path.rpartition(".")
                parent = lookup(result, parent_path)
                if isinstance(parent, dict):
                    parent.pop(key, None)
        else:
            keep: dict[str, set[str]] = {}
            for path in rule.fields:
                parent_path, _, key = path.rpartition(".")
                keep.setdefault(parent_path, set()).add(key)
            for parent_path, keys in keep.items():
                parent = lookup(result, parent_path)
                if isinstance(parent, dict):
                    for key in [k for k in parent if k not in keys]:
                        del parent[key]
    return result
