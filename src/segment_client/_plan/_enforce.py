"""Enforcement in the client: `PlanEnforcer` applies a plan and the violation and
unplanned-event policies to each message on the caller's thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from segment_client._exceptions import ConfigurationError, DeliveryError

from ._errors import TrackingPlanViolation, Violation
from ._rules import TrackingPlan

__all__ = ["PlanEnforcer", "ViolationHandler"]

logger = logging.getLogger("segment_client")

ViolationPolicy = Literal["raise", "report", "drop"]
UnplannedPolicy = Literal["allow", "report", "drop"]
ViolationHandler = Callable[[TrackingPlanViolation, dict[str, Any]], None]


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
        # The common call in one lookup: event name -> generated validator (the plan is
        # immutable after loading).
        self._track_valid: dict[Any, Callable[[Any], bool]] = {
            name: rule.valid for name, rule in plan.track_rules.items() if rule.valid is not None
        }

    def admit(self, message: dict[str, Any]) -> bool:
        """True: send `message`. False: it was dropped (and reported). May raise
        `TrackingPlanViolation` under the "raise" policy."""
        if message.get("type") == "track":
            valid = self._track_valid.get(message.get("event"))
            if valid is not None and valid(message):
                return True
            rule = self.plan.track_rules.get(message.get("event"))  # type: ignore[arg-type]
            if rule is None:
                return self._unplanned(message)
        else:
            rule = self.plan.rule_for(message)
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
        logger.warning("tracking plan violation: %s", error)
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
        logger.warning("unplanned event %r", event)
        return True

    def _call_handler(self, error: TrackingPlanViolation, message: dict[str, Any]) -> None:
        if self._handler is None:
            return
        try:
            self._handler(error, message)
        except Exception:
            logger.exception("on_plan_violation raised; ignored")


def _dropped_error(text: str, cause: TrackingPlanViolation) -> DeliveryError:
    error = DeliveryError(text)
    error.__cause__ = cause
    return error
