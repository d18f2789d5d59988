"""Identity lints: where the browser and the server disagree about who a user is.

Each lint names the events involved, the profiles they belong to, and the fix in one
line. Computed on demand from an `IdentityGraph` snapshot in O(events); pure apart from
reading the graph; thread-safe.

A "session" here is a run of one profile's events with no gap over 30 minutes (the usual
web-analytics definition; Segment keeps no session for server events).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ._identity import EventSummary, IdentityGraph

__all__ = ["LINT_CODES", "SESSION_GAP", "TRAITLESS_IDENTIFIES", "Lint", "lint"]

SESSION_GAP = 30 * 60.0
# This many identify calls without traits, for one user from one source, is "on every
# request": one identify at login (with traits) is what stitching needs.
TRAITLESS_IDENTIFIES = 3
_SERVER_KINDS = ("segment-client", "server")
_CAP_RULES = ("merge_cap", "identifier_cap")

LINT_CODES = (
    "server_anonymous_id_unknown",
    "blocked_user_id",
    "identify_without_traits",
    "alias_chain",
    "anonymous_id_mismatch",
    "merge_cap",
)


@dataclass(frozen=True)
class Lint:
    """One finding: `code` (one of LINT_CODES), what is wrong, the fix, the evidence."""

    code: str
    message: str
    fix: str
    events: tuple[int, ...]
    profiles: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "fix": self.fix,
            "events": list(self.events),
            "profiles": list(self.profiles),
        }


def _plural(events: list[EventSummary], word: str) -> str:
    return f"{word}{'s' if len(events) != 1 else ''} {_ids(events)}"


def _ids(events: list[EventSummary]) -> str:
    shown = ", ".join(str(event.id) for event in events[:10])
    return shown + (f" and {len(events) - 10} more" if len(events) > 10 else "")


def lint(graph: IdentityGraph, profile: str | None = None) -> list[Lint]:
    """Every lint of the graph (or only those naming `profile`), profile by profile."""
    profiles, events = graph.snapshot()
    found: list[Lint] = []
    placed = {event.id: pid for pid, timeline, _, _ in profiles for event in timeline}
    for pid, timeline, refusals, merge_count in profiles:
        found += _unknown_server_ids(pid, timeline)
        found += _mismatch_in_session(pid, timeline)
        found += _traitless_identifies(pid, timeline)
        # The profile that reached the cap (the refused side has the refusal as well).
        capped = [refusal for refusal in refusals
                  if refusal.rule in _CAP_RULES and refusal.profile == pid]
        if capped or merge_count >= graph.rules.max_merges:
            ids = tuple(sorted({refusal.event for refusal in capped}))
            found.append(Lint(
                "merge_cap",
                f"profile {pid} reached a cap ({merge_count} merges); "
                f"{len(capped)} identifier(s) of events {', '.join(map(str, ids[:10])) or '-'} "
                "were not linked",
                "One identifier links unrelated people (a shared test account, a constant or "
                "placeholder id): add it to the blocked values or stop sending it.",
                ids, (pid,),
            ))
    found += _blocked_user_ids(graph, events, placed)
    found += _alias_chains(events, placed)
    if profile is not None:
        resolved = graph.resolve(profile) or profile
        found = [item for item in found if resolved in item.profiles]
    return found


def _unknown_server_ids(pid: str, timeline: list[EventSummary]) -> list[Lint]:
    browser = {e.anonymous_id for e in timeline if e.source.kind == "browser" and e.anonymous_id}
    if not browser:
        return []
    strays = [e for e in timeline if e.source.kind in _SERVER_KINDS
              and e.anonymous_id and e.anonymous_id not in browser]
    if not strays:
        return []
    values = sorted({str(e.anonymous_id) for e in strays})
    return [Lint(
        "server_anonymous_id_unknown",
        f"{_plural(strays, 'server event')} of profile {pid} sent anonymousId "
        f"{', '.join(map(repr, values))}, which the browser never used "
        f"(it used {', '.join(map(repr, sorted(browser)))})",
        "Send the browser's ajs_anonymous_id cookie as the server call's anonymousId "
        "(the framework integrations read it from each request's cookies).",
        tuple(e.id for e in strays), (pid,),
    )]


def _sessions(timeline: list[EventSummary]) -> list[list[EventSummary]]:
    sessions: list[list[EventSummary]] = []
    last: float | None = None
    for event in timeline:  # oldest first; events without a time are left out
        if event.at is None:
            continue
        if last is None or event.at - last > SESSION_GAP:
            sessions.append([])
        sessions[-1].append(event)
        last = event.at
    return sessions


def _mismatch_in_session(pid: str, timeline: list[EventSummary]) -> list[Lint]:
    ever = {e.anonymous_id for e in timeline if e.source.kind == "browser" and e.anonymous_id}
    found = []
    for session in _sessions(timeline):
        browser = [e for e in session if e.source.kind == "browser" and e.anonymous_id]
        in_browser = {e.anonymous_id for e in browser}
        # An id the browser never used at all is the lint above; here the server sends
        # one the browser used once but not in this session (kept from before a reset).
        stale = [e for e in session if e.source.kind in _SERVER_KINDS and e.anonymous_id
                 and e.anonymous_id not in in_browser and e.anonymous_id in ever]
        if not browser or not stale:
            continue
        involved = sorted(stale + browser, key=lambda e: e.id)
        sent = ", ".join(sorted({repr(e.anonymous_id) for e in stale}))
        found.append(Lint(
            "anonymous_id_mismatch",
            f"in one session of profile {pid} the browser sent anonymousId "
            f"{', '.join(map(repr, sorted(map(str, in_browser))))} but "
            f"{_plural(stale, 'server event')} sent {sent}",
            "Read ajs_anonymous_id from each request's cookies instead of keeping an older "
            "one (in the server session or a cache): analytics.reset() starts a new one.",
            tuple(e.id for e in involved), (pid,),
        ))
    return found


def _traitless_identifies(pid: str, timeline: list[EventSummary]) -> list[Lint]:
    groups: dict[tuple[str, str], list[EventSummary]] = defaultdict(list)
    for event in timeline:
        if event.type == "identify" and event.user_id is not None:
            groups[(event.user_id, event.source.kind)].append(event)
    found = []
    for (user_id, kind), identifies in groups.items():
        traitless = [e for e in identifies if e.traitless]
        if len(traitless) >= TRAITLESS_IDENTIFIES:
            found.append(Lint(
                "identify_without_traits",
                f"{len(traitless)} identify calls without traits for userId {user_id!r} "
                f"from {kind} (events {_ids(traitless)})",
                "Call identify once at login or signup and when traits change, with the "
                "traits; every other call needs only the userId.",
                tuple(e.id for e in traitless), (pid,),
            ))
    return found


def _blocked_user_ids(graph: IdentityGraph, events: list[EventSummary],
                      placed: dict[int, str]) -> list[Lint]:
    groups: dict[str, list[EventSummary]] = defaultdict(list)
    for event in events:
        if event.user_id is not None and graph.rules.blocked(event.user_id):
            groups[event.user_id].append(event)
    return [Lint(
        "blocked_user_id",
        f"userId {value!r} is a blocked value and links nothing (events {_ids(hits)})",
        "Send no userId until the user is known: a missing id turned into text "
        "('null', '0', '-1') would merge every such visitor into one profile.",
        tuple(e.id for e in hits),
        tuple(sorted({placed[e.id] for e in hits if e.id in placed})),
    ) for value, hits in groups.items()]


def _alias_chains(events: list[EventSummary], placed: dict[int, str]) -> list[Lint]:
    aliases = [e for e in events if e.type == "alias" and e.previous_id is not None]
    target_of: dict[str, list[EventSummary]] = defaultdict(list)
    for alias in aliases:
        if alias.user_id is not None:
            target_of[alias.user_id].append(alias)
    found = []
    for alias in aliases:
        earlier = [e for e in target_of.get(str(alias.previous_id), []) if e.id != alias.id]
        if not earlier:
            continue
        chain = sorted([*earlier, alias], key=lambda e: e.id)
        found.append(Lint(
            "alias_chain",
            f"alias event {alias.id} aliases {alias.previous_id!r}, itself the target of "
            f"alias event(s) {_ids(earlier)}: a chain "
            + " -> ".join(repr(x) for x in [earlier[0].previous_id, alias.previous_id,
                                            alias.user_id]),
            "Alias each earlier id straight to the final userId, once: many destinations "
            "cannot follow an alias of an alias.",
            tuple(e.id for e in chain),
            tuple(sorted({placed[e.id] for e in chain if e.id in placed})),
        ))
    return found
