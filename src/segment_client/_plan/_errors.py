"""Tracking-plan errors: the load-time `PlanError`, one `Violation`, and the
`TrackingPlanViolation` a call raises under `on_violation="raise"`. Immutable values."""

from __future__ import annotations

from dataclasses import dataclass

from segment_client._exceptions import ConfigurationError, MessageError

__all__ = ["PlanError", "TrackingPlanViolation", "Violation"]


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
