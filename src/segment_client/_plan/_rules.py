"""Rules and plans: a compiled `Rule` per event (or identify / group) and the
`TrackingPlan` that looks them up. Immutable after loading; thread-safe to share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._codegen import Valid, compile_rule
from ._errors import PlanError, Violation
from ._schema import Check

__all__ = ["Rule", "TrackingPlan"]



@dataclass
class Rule:
    """One compiled rule. `schema` is the whole-message JSON Schema; `payload` is the
    schema of its `properties` (track) or `traits` (identify, group). `check` (the
    interpreter) lists violations; `valid` (generated code) is the fast yes."""

    kind: str  # "track", "identify" or "group"
    key: str | None  # the event name for track rules
    schema: dict[str, Any]
    version: int | None = None
    description: str = ""
    check: Check | None = field(default=None, repr=False)
    #: The generated validator: True when the message certainly follows the rule.
    valid: Valid | None = field(default=None, repr=False)

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
        valid = self.valid
        if valid is not None and valid(message):
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
                rule.check, rule.valid = compile_rule(rule.schema, where)
            elif rule.valid is None:
                rule.valid = _interpreted(rule.check)
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


def _interpreted(check: Check) -> Valid:
    """A validator for a rule built with its own check and no generated validator."""
    def valid(message: Any) -> bool:
        return not check(message)

    return valid
