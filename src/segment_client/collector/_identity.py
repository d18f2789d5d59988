"""The identity graph: stored messages linked into profiles by Segment Unify's rules.

Each message's identifiers (`identifiers_of`, plus an alias's `previousId`) are looked
up; the profiles they point at are merged into the oldest one, unless a rule forbids it.
A blocked value is dropped first. Then, while linking everything the message carries
would break a value limit or a cap, the lowest-priority identifier is dropped and the
rest tried again (Unify's merge protection); the message joins what remains. Every
merge and every dropped identifier is recorded with its reason.

Fed in arrival order (`add`), one message at a time; the same messages in the same order
always give the same profiles and ids, so a graph rebuilt from a store file matches the
one that was live. Thread-safe (one lock); `add` costs O(identifiers on the profiles
involved), reads copy what they return.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._sources import Source, source_of
from ._time import parse_iso
from ._unify_rules import Identifier, UnifyRules, identifiers_of, text_id

__all__ = ["EventSummary", "IdentityGraph", "Merge", "Profile", "Refusal"]


@dataclass(frozen=True, slots=True)
class EventSummary:
    """What the graph keeps of one message: enough for timelines and lints."""

    id: int
    type: str
    name: str | None  # a track's event, a page's or screen's name
    user_id: str | None
    anonymous_id: str | None
    previous_id: str | None  # aliases only
    source: Source
    timestamp: str | None  # as sent, else when received
    at: float | None  # `timestamp` as epoch seconds, when it parses
    traitless: bool  # an identify without any trait

    def to_dict(self, profile: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "userId": self.user_id,
            "anonymousId": self.anonymous_id,
            "previousId": self.previous_id,
            "source": self.source.to_dict(),
            "timestamp": self.timestamp,
            "profile": profile,
        }


@dataclass(frozen=True)
class Merge:
    """Profile `absorbed` merged into `into` by event `event`, linked through `via`."""

    event: int
    into: str
    absorbed: str
    via: tuple[Identifier, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "into": self.into,
            "absorbed": self.absorbed,
            "via": [{"type": kind, "value": value} for kind, value in self.via],
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Refusal:
    """An identifier of event `event` that was not linked, the rule and why.

    `rule` is one of `blocked_value`, `value_limit`, `merge_cap`, `identifier_cap`;
    `profile` is where the event went (None: it carried nothing else).
    """

    event: int
    identifier: Identifier
    rule: str
    reason: str
    profile: str | None

    def to_dict(self) -> dict[str, Any]:
        kind, value = self.identifier
        return {
            "event": self.event,
            "type": kind,
            "value": value,
            "rule": self.rule,
            "reason": self.reason,
            "profile": self.profile,
        }


@dataclass
class Profile:
    """One person as the graph sees them. Mutated only under the graph's lock."""

    id: str
    seq: int
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    events: list[int] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    merge_count: int = 0
    traits: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)  # event counts by source kind
    last: EventSummary | None = None  # the latest event (by time, then id)

    def count(self) -> int:
        return sum(map(len, self.identifiers.values()))


def _parse_time(text: str | None) -> float | None:
    value = parse_iso(text)
    return value.timestamp() if value is not None else None


def summarize(event_id: int, message: Mapping[str, Any], received_at: str | None) -> EventSummary:
    """The summary of one stored message (`received_at` when it has no timestamp)."""
    kind = message.get("type")
    kind = kind if isinstance(kind, str) else "?"
    name = message.get("event") if kind == "track" else message.get("name")
    if name is None and kind == "page":
        properties = message.get("properties")
        if isinstance(properties, dict):
            name = properties.get("path")  # analytics.js's page() without a name
    timestamp = message.get("timestamp")
    if not isinstance(timestamp, str):
        timestamp = received_at
    traits = message.get("traits")
    return EventSummary(
        id=event_id,
        type=kind,
        name=name if isinstance(name, str) else None,
        user_id=text_id(message.get("userId")),
        anonymous_id=text_id(message.get("anonymousId")),
        previous_id=text_id(message.get("previousId")) if kind == "alias" else None,
        source=source_of(message),
        timestamp=timestamp,
        at=_parse_time(timestamp),
        traitless=kind == "identify" and not (isinstance(traits, dict) and traits),
    )


class IdentityGraph:
    """Profiles built from messages by `rules` (Segment's defaults). Thread-safe."""

    def __init__(self, rules: UnifyRules | None = None) -> None:
        self.rules = rules or UnifyRules()
        self._lock = threading.Lock()
        self._profiles: dict[str, Profile] = {}  # live profiles by id
        self._forward: dict[str, str] = {}  # absorbed profile -> the one it joined
        self._owner: dict[Identifier, Profile] = {}
        self._events: dict[int, EventSummary] = {}
        self._event_profile: dict[int, str] = {}  # as placed (follow _forward)
        self._unplaced: list[Refusal] = []  # refusals of events that joined nothing
        self._seq = 0

    def clear(self) -> None:
        """Forget every profile and event."""
        with self._lock:
            self._profiles = {}
            self._forward = {}
            self._owner = {}
            self._events = {}
            self._event_profile = {}
            self._unplaced = []
            self._seq = 0

    # -- writing --------------------------------------------------------------------------

    def add_many(self, rows: Iterable[tuple[int, Mapping[str, Any], str | None]]) -> None:
        """`add` each (event id, message, received_at), in order."""
        for event_id, message, received_at in rows:
            self.add(event_id, message, received_at)

    def add(
        self, event_id: int, message: Mapping[str, Any], received_at: str | None = None
    ) -> str | None:
        """Place one stored message; returns its profile id (None: no usable identifier)."""
        summary = summarize(event_id, message, received_at)
        with self._lock:
            self._events[event_id] = summary
            found = identifiers_of(message)
            if summary.previous_id is not None:
                found.append((self._previous_kind(summary.previous_id), summary.previous_id))
            owner = self._owner
            if found:
                # Most messages: every identifier already belongs to the same profile
                # (so none is blocked or new, and no rule can be broken).
                first = owner.get(found[0])
                if first is not None and all(owner.get(i) is first for i in found[1:]):
                    self._attach(first, summary, message)
                    return first.id
            refusals: list[tuple[Identifier, str, str, Profile | None]] = []
            kept: list[Identifier] = []
            for identifier in found:
                why = self.rules.blocked(identifier[1])
                if why is None:
                    kept.append(identifier)
                else:
                    refusals.append((identifier, "blocked_value", why, None))
            # Stable: within a type, the order the message gives them.
            kept.sort(key=lambda identifier: self.rules.rank(identifier[0]))
            while kept:
                owners = self._owners(kept)
                violation = self._violation(kept, owners)
                if violation is None:
                    break
                rule, why = violation
                dropped = kept.pop()
                refusals.append((dropped, rule, f"not linked: {why}", self._owner.get(dropped)))
            profile = self._place(summary, kept, message) if kept else None
            for identifier, rule, why, other in refusals:
                refusal = Refusal(event_id, identifier, rule, why,
                                  profile.id if profile else None)
                if profile is not None:
                    profile.refusals.append(refusal)
                else:
                    self._unplaced.append(refusal)
                if other is not None and other is not profile:
                    other.refusals.append(refusal)
            return profile.id if profile else None

    def _previous_kind(self, value: str) -> str:
        # An alias's previousId is a user id when one was seen as such, else it is the
        # anonymous id of the visitor who has just identified (analytics.js's own alias).
        return "user_id" if ("user_id", value) in self._owner else "anonymous_id"

    def _owners(self, kept: list[Identifier]) -> list[Profile]:
        owners: list[Profile] = []
        for identifier in kept:
            owner = self._owner.get(identifier)
            if owner is not None and owner not in owners:
                owners.append(owner)
        owners.sort(key=lambda profile: profile.seq)
        return owners

    def _violation(self, kept: list[Identifier], owners: list[Profile]) -> tuple[str, str] | None:
        """The first rule that linking `kept` with `owners` would break, or None."""
        rules = self.rules
        if len(owners) == 1 and all(self._owner.get(i) is owners[0] for i in kept):
            return None  # the usual case: nothing new
        if len(owners) > 1:
            merges = sum(profile.merge_count for profile in owners) + len(owners) - 1
            if merges > rules.max_merges:
                names = ", ".join(profile.id for profile in owners)
                return ("merge_cap", f"merging {names} would make {merges} merges "
                                     f"(cap {rules.max_merges})")
        values: dict[str, set[str]] = {}
        for profile in owners:
            for kind, held in profile.identifiers.items():
                values.setdefault(kind, set()).update(held)
        for kind, value in kept:
            values.setdefault(kind, set()).add(value)
        total = sum(map(len, values.values()))
        if total > rules.max_identifiers:
            return ("identifier_cap", f"the profile would hold {total} identifiers "
                                      f"(cap {rules.max_identifiers})")
        for kind, merged in values.items():
            limit = rules.limit(kind)
            if len(merged) > limit:
                shown = ", ".join(repr(value) for value in sorted(merged)[:6])
                return ("value_limit", f"the profile would hold {len(merged)} {kind} values "
                                       f"(limit {limit}): {shown}")
        return None

    def _place(self, summary: EventSummary, kept: list[Identifier],
               message: Mapping[str, Any]) -> Profile:
        owners = self._owners(kept)
        if owners:
            profile = owners[0]
            for absorbed in owners[1:]:
                self._merge(summary.id, profile, absorbed, kept)
        else:
            self._seq += 1
            profile = Profile(id=f"p{self._seq}", seq=self._seq)
            self._profiles[profile.id] = profile
        for identifier in kept:
            if identifier not in self._owner:
                profile.identifiers.setdefault(identifier[0], []).append(identifier[1])
                self._owner[identifier] = profile
        self._attach(profile, summary, message)
        return profile

    def _attach(self, profile: Profile, summary: EventSummary,
                message: Mapping[str, Any]) -> None:
        profile.events.append(summary.id)
        self._event_profile[summary.id] = profile.id
        kind = summary.source.kind
        profile.sources[kind] = profile.sources.get(kind, 0) + 1
        if profile.last is None or _order(summary) > _order(profile.last):
            profile.last = summary
        context = message.get("context")
        if isinstance(context, dict) and isinstance(context.get("traits"), dict):
            profile.traits.update(context["traits"])
        if message.get("type") == "identify" and isinstance(message.get("traits"), dict):
            profile.traits.update(message["traits"])

    def _merge(self, event_id: int, into: Profile, absorbed: Profile,
               kept: list[Identifier]) -> None:
        via = tuple(identifier for identifier in kept if self._owner.get(identifier) is absorbed)
        linked = tuple(identifier for identifier in kept if self._owner.get(identifier) is into)
        reason = (f"event {event_id} carries "
                  + ", ".join(f"{kind} {value!r}" for kind, value in linked or kept[:1])
                  + f" ({into.id}) and "
                  + ", ".join(f"{kind} {value!r}" for kind, value in via)
                  + f" ({absorbed.id})")
        merge = Merge(event_id, into.id, absorbed.id, via, reason)
        for kind, held in absorbed.identifiers.items():
            mine = into.identifiers.setdefault(kind, [])
            for value in held:
                mine.append(value)
                self._owner[(kind, value)] = into
        into.events.extend(absorbed.events)
        into.merges.extend(absorbed.merges)
        into.merges.append(merge)
        into.refusals.extend(absorbed.refusals)
        into.merge_count += absorbed.merge_count + 1
        into.traits = {**absorbed.traits, **into.traits}
        for kind, count in absorbed.sources.items():
            into.sources[kind] = into.sources.get(kind, 0) + count
        if absorbed.last is not None and (into.last is None
                                          or _order(absorbed.last) > _order(into.last)):
            into.last = absorbed.last
        del self._profiles[absorbed.id]
        self._forward[absorbed.id] = into.id
        for old, new in self._forward.items():
            if new == absorbed.id:
                self._forward[old] = into.id

    # -- reading --------------------------------------------------------------------------

    def resolve(self, profile_id: str) -> str | None:
        """The live profile that `profile_id` is (or was merged into), or None."""
        with self._lock:
            return self._resolve(profile_id)

    def _resolve(self, profile_id: str) -> str | None:
        profile_id = self._forward.get(profile_id, profile_id)
        return profile_id if profile_id in self._profiles else None

    def profile_of_event(self, event_id: int) -> str | None:
        """The profile event `event_id` belongs to now, or None."""
        with self._lock:
            placed = self._event_profile.get(event_id)
            return None if placed is None else self._resolve(placed)

    def find(self, kind: str, value: str) -> str | None:
        """The profile holding identifier (`kind`, `value`), or None."""
        with self._lock:
            owner = self._owner.get((kind, value))
            return owner.id if owner else None

    def profiles(self) -> list[dict[str, Any]]:
        """Every profile, oldest first: identifiers, counts by source, last event."""
        with self._lock:
            result = []
            for profile in self._profiles.values():
                last = profile.last
                result.append({
                    "id": profile.id,
                    "identifiers": self._identifiers(profile),
                    "events": len(profile.events),
                    "sources": dict(profile.sources),
                    "merges": len(profile.merges),
                    "refusals": len(profile.refusals),
                    "lastSeen": last.timestamp if last else None,
                    "traits": dict(profile.traits),
                })
            return result

    def profile(self, profile_id: str) -> dict[str, Any] | None:
        """One profile in full, with its timeline (oldest first), or None.

        An absorbed profile's id gives the profile it was merged into.
        """
        with self._lock:
            resolved = self._resolve(profile_id)
            if resolved is None:
                return None
            profile = self._profiles[resolved]
            timeline = sorted((self._events[event_id] for event_id in profile.events), key=_order)
            return {
                "id": profile.id,
                "identifiers": self._identifiers(profile),
                "traits": dict(profile.traits),
                "merges": [merge.to_dict() for merge in profile.merges],
                "mergeCount": profile.merge_count,
                "refusals": [refusal.to_dict() for refusal in profile.refusals],
                "timeline": [summary.to_dict(profile.id) for summary in timeline],
            }

    def snapshot(self) -> tuple[list[tuple[str, list[EventSummary], list[Refusal], int]],
                                list[EventSummary]]:
        """For lints: each profile (id, timeline, refusals, merge count), and every event."""
        with self._lock:
            profiles = [
                (profile.id, sorted((self._events[e] for e in profile.events), key=_order),
                 list(profile.refusals), profile.merge_count)
                for profile in self._profiles.values()
            ]
            events = sorted(self._events.values(), key=lambda summary: summary.id)
            return profiles, events

    def _identifiers(self, profile: Profile) -> list[dict[str, str]]:
        kinds = sorted(profile.identifiers, key=self.rules.rank)
        return [{"type": kind, "value": value} for kind in kinds
                for value in profile.identifiers[kind]]

    def unplaced(self) -> list[dict[str, Any]]:
        """Refusals of events that joined no profile (every identifier was refused)."""
        with self._lock:
            return [refusal.to_dict() for refusal in self._unplaced]


def _order(summary: EventSummary) -> tuple[float, int]:
    return (summary.at if summary.at is not None else float("inf"), summary.id)
