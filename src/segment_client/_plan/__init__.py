"""Tracking plans: loading (Segment exports and a native form), compiled validation,
the client-side enforcement policies, and typed event functions (typegen).

A plan holds one rule per tracked event, plus optional identify and group rules. Each
rule is a JSON Schema for the whole message (as in Segment's Protocols), compiled once
at load time. The modules, by job: `_errors` (PlanError, violations), `_schema` (the
schema interpreter and the supported subset), `_codegen` (validators generated as
Python code, the fast path), `_rules` (Rule, TrackingPlan), `_loaders` (the three plan
formats), `_enforce` (PlanEnforcer and its policies), `_typegen`.
"""

from ._enforce import PlanEnforcer, ViolationHandler
from ._errors import PlanError, TrackingPlanViolation, Violation
from ._loaders import load_plan
from ._rules import Rule, TrackingPlan

__all__ = [
    "PlanEnforcer",
    "PlanError",
    "Rule",
    "TrackingPlan",
    "TrackingPlanViolation",
    "Violation",
    "ViolationHandler",
    "load_plan",
]
