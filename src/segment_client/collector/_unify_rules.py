"""Segment Unify's identity rules as data: identifier priority, value limits, blocked
values and merge caps, and how a message's identifiers are read.

The defaults are the ones Segment documents for a new Unify space: `user_id` ranks
first, then `email`, then every other identifier type alphabetically; a profile holds
at most 1 `user_id` and 5 values of every other type; values matching `^[0-]*$` or
equal to `-1`, `null` or `anonymous` never link anything; a profile takes at most 100
merges and 1,000 identifier values. Immutable; thread-safe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Identifier", "UnifyRules", "identifiers_of", "text_id"]

# (type, value), e.g. ("user_id", "u-1") or ("anonymous_id", "9f3c...").
Identifier = tuple[str, str]

_DEFAULT_LIMITS: Mapping[str, int] = MappingProxyType({"user_id": 1})


@dataclass(frozen=True)
class UnifyRules:
    """The rules an identity graph applies; the defaults are Segment's.

    Args:
        priority: identifier types ranked first, in order; every other type follows,
            alphabetically.
        limits: the most values a profile may hold, by type; `default_limit` for the rest.
        blocked_patterns: regular expressions (full match) for values that never link.
        blocked_values: exact values that never link (compared case-insensitively).
        max_merges: how many merges one profile may take part in.
        max_identifiers: how many identifier values one profile may hold.
    """

    priority: tuple[str, ...] = ("user_id", "email")
    limits: Mapping[str, int] = field(default_factory=lambda: _DEFAULT_LIMITS)
    default_limit: int = 5
    blocked_patterns: tuple[str, ...] = (r"^[0-]*$",)
    blocked_values: tuple[str, ...] = ("-1", "null", "anonymous")
    max_merges: int = 100
    max_identifiers: int = 1000
    _compiled: tuple[re.Pattern[str], ...] = field(
        init=False, repr=False, compare=False, default=()
    )
    _blocked: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        compiled = tuple(re.compile(pattern) for pattern in self.blocked_patterns)
        object.__setattr__(self, "_compiled", compiled)
        blocked = frozenset(value.lower() for value in self.blocked_values)
        object.__setattr__(self, "_blocked", blocked)

    def rank(self, kind: str) -> tuple[int, str]:
        """Sort key of an identifier type: lower ranks first (kept longest)."""
        try:
            return (self.priority.index(kind), "")
        except ValueError:
            return (len(self.priority), kind)

    def limit(self, kind: str) -> int:
        """The most values of `kind` one profile may hold."""
        return self.limits.get(kind, self.default_limit)

    def blocked(self, value: str) -> str | None:
        """Why `value` may never link profiles (the rule it matches), or None."""
        if value.lower() in self._blocked:
            return f"blocked value {value!r}"
        for pattern in self._compiled:
            if pattern.fullmatch(value):
                return f"blocked value {value!r} (matches {pattern.pattern})"
        return None


def text_id(value: Any) -> str | None:
    """An id as text: strings as they are, numbers as their decimal text, else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def identifiers_of(message: Mapping[str, Any]) -> list[Identifier]:
    """The identifiers one message carries, in the order found, without repeats.

    `userId`, `anonymousId`, the email in `context.traits` (and in an identify's
    `traits`) and the user entries of `context.externalIds`. An alias's `previousId` is
    not here: its type depends on the graph (see `IdentityGraph`).
    """
    found: list[Identifier] = []

    def add(kind: str, value: Any) -> None:
        text = text_id(value)
        if text is not None and (kind, text) not in found:
            found.append((kind, text))

    add("user_id", message.get("userId"))
    add("anonymous_id", message.get("anonymousId"))
    context = message.get("context")
    context = context if isinstance(context, dict) else {}
    for traits in (context.get("traits"), message.get("traits") if
                   message.get("type") == "identify" else None):
        if isinstance(traits, dict) and isinstance(traits.get("email"), str):
            add("email", traits["email"].strip())
    external = context.get("externalIds")
    if isinstance(external, list):
        for entry in external:
            if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                continue
            # Entries of another collection (e.g. "accounts") identify groups, not users.
            if entry.get("collection", "users") not in ("users", None):
                continue
            kind = entry["type"].strip().lower()
            if kind:
                add(kind, entry.get("id"))
    return found
