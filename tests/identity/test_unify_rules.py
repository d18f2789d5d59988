"""Segment Unify's rules in the identity graph, table by table.

Each rule has a case whose outcome differs without it (noted on the test).
"""

from __future__ import annotations

import pytest

from segment_client.collector._identity import IdentityGraph
from segment_client.collector._unify_rules import UnifyRules, identifiers_of

from ._scenario import Feed

# ---------- the defaults are Segment's documented ones ----------


def test_defaults_are_segments() -> None:
    rules = UnifyRules()
    assert rules.priority == ("user_id", "email")
    assert [rules.limit(kind) for kind in ("user_id", "email", "anonymous_id", "ga_id")] == [
        1, 5, 5, 5,
    ]
    assert (rules.max_merges, rules.max_identifiers) == (100, 1000)
    assert rules.blocked_patterns == (r"^[0-]*$",)
    assert rules.blocked_values == ("-1", "null", "anonymous")


# ---------- reading identifiers ----------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "track", "userId": "u1", "anonymousId": "a1"},
         [("user_id", "u1"), ("anonymous_id", "a1")]),
        ({"type": "track", "userId": 42}, [("user_id", "42")]),
        ({"type": "track", "userId": True, "anonymousId": None}, []),
        ({"type": "identify", "userId": "u1", "traits": {"email": " a@x.io "}},
         [("user_id", "u1"), ("email", "a@x.io")]),
        # A group's traits describe the group, not the user.
        ({"type": "group", "userId": "u1", "traits": {"email": "team@x.io"}},
         [("user_id", "u1")]),
        ({"type": "page", "anonymousId": "a1", "context": {"traits": {"email": "b@x.io"}}},
         [("anonymous_id", "a1"), ("email", "b@x.io")]),
        ({"type": "track", "userId": "u1", "context": {"externalIds": [
            {"id": "g-1", "type": "GA_Client_Id", "collection": "users", "encoding": "none"},
            {"id": "acct-1", "type": "account_id", "collection": "accounts"},
            {"id": "x", "type": ""},
            "junk",
        ]}}, [("user_id", "u1"), ("ga_client_id", "g-1")]),
        ({"type": "track", "userId": "u1", "anonymousId": "u1"},
         [("user_id", "u1"), ("anonymous_id", "u1")]),
    ],
)
def test_identifiers_of(message: dict[str, object], expected: list[tuple[str, str]]) -> None:
    assert identifiers_of(message) == expected


# ---------- blocked values ----------


@pytest.mark.parametrize(
    ("value", "blocked"),
    [
        ("", True), ("0", True), ("0000", True), ("00000000-0000-0000-0000-000000000000", True),
        ("-", True), ("-1", True), ("null", True), ("NULL", True), ("Null", True),
        ("anonymous", True), ("Anonymous", True),
        ("10", False), ("-2", False), ("nulls", False), ("anonymous-1", False),
        ("0x0", False), ("u-0", False), ("undefined", False),
    ],
)
def test_blocked_values(value: str, blocked: bool) -> None:
    assert (UnifyRules().blocked(value) is not None) is blocked


def test_a_blocked_user_id_links_nothing() -> None:
    # Without the blocked values both visitors would merge through userId "null".
    feed = Feed()
    first = feed.browser("identify", userId="null", anonymousId="a1")
    second = feed.browser("identify", userId="null", anonymousId="a2")
    assert feed.profile_of(first) != feed.profile_of(second)
    assert feed.identifiers(first) == {("anonymous_id", "a1")}
    profile = feed.graph.profile(feed.profile_of(second))
    assert profile is not None
    assert [(r["rule"], r["type"], r["value"]) for r in profile["refusals"]] == [
        ("blocked_value", "user_id", "null"),
    ]
    assert "blocked value 'null'" in profile["refusals"][0]["reason"]


def test_a_message_with_only_blocked_ids_joins_nothing() -> None:
    feed = Feed()
    feed.server("track", event="x", userId="0", anonymousId="anonymous")
    assert feed.graph.profiles() == []
    assert [r["value"] for r in feed.graph.unplaced()] == ["0", "anonymous"]


def test_blocked_values_can_be_changed() -> None:
    feed = Feed(IdentityGraph(UnifyRules(blocked_patterns=(), blocked_values=("guest",))))
    first = feed.browser("identify", userId="guest", anonymousId="a1")
    second = feed.browser("identify", userId="0", anonymousId="a2")
    assert feed.identifiers(first) == {("anonymous_id", "a1")}
    assert ("user_id", "0") in feed.identifiers(second)


# ---------- value limits ----------


def test_user_id_limit_one_splits_a_second_user_on_the_same_browser() -> None:
    # Without the limit, u2 would join u1's profile through the shared anonymousId.
    feed = Feed()
    page = feed.browser("page", anonymousId="a1")
    first = feed.browser("identify", userId="u1", anonymousId="a1")
    second = feed.browser("identify", userId="u2", anonymousId="a1")
    assert feed.profile_of(page) == feed.profile_of(first) != feed.profile_of(second)
    assert feed.identifiers(first) == {("user_id", "u1"), ("anonymous_id", "a1")}
    assert feed.identifiers(second) == {("user_id", "u2")}
    profile = feed.graph.profile(feed.profile_of(second))
    assert profile is not None
    [refusal] = profile["refusals"]
    assert (refusal["rule"], refusal["type"], refusal["value"]) == (
        "value_limit", "anonymous_id", "a1")
    assert "2 user_id values (limit 1)" in refusal["reason"]
    # The refusal shows on the profile that kept the identifier too.
    other = feed.graph.profile(feed.profile_of(first))
    assert other is not None and other["refusals"] == [refusal]


def test_five_anonymous_ids_per_profile() -> None:
    # Without the limit the sixth anonymousId would join u1's profile.
    feed = Feed()
    for n in range(1, 6):
        feed.server("track", event="x", userId="u1", anonymousId=f"a{n}")
    sixth = feed.server("track", event="x", userId="u1", anonymousId="a6")
    assert len([k for k, _ in feed.identifiers(sixth) if k == "anonymous_id"]) == 5
    assert feed.graph.find("anonymous_id", "a6") is None
    later = feed.browser("page", anonymousId="a6")
    assert feed.profile_of(later) != feed.profile_of(sixth)


def test_limits_can_be_changed() -> None:
    feed = Feed(IdentityGraph(UnifyRules(limits={"user_id": 2})))
    first = feed.browser("identify", userId="u1", anonymousId="a1")
    second = feed.browser("identify", userId="u2", anonymousId="a1")
    assert feed.profile_of(first) == feed.profile_of(second)


# ---------- priority ----------


def test_lowest_priority_identifier_is_dropped_first() -> None:
    # The email outranks the anonymousId: the anonymousId (u1's) is dropped and the new
    # email stays with u2. Dropping in the message's order would drop the email first
    # (and then the anonymousId as well).
    feed = Feed()
    feed.browser("identify", userId="u1", anonymousId="a1")
    event = feed.browser("identify", userId="u2", anonymousId="a1",
                         traits={"email": "two@x.io"})
    assert feed.identifiers(event) == {("user_id", "u2"), ("email", "two@x.io")}


def test_user_id_outranks_email() -> None:
    # With email first, u2 would be dropped and the event would join u1's profile.
    feed = Feed()
    first = feed.server("identify", userId="u1", traits={"email": "shared@x.io"})
    second = feed.server("identify", userId="u2", traits={"email": "shared@x.io"})
    assert feed.profile_of(first) != feed.profile_of(second)
    assert feed.identifiers(second) == {("user_id", "u2")}


def test_other_types_rank_alphabetically() -> None:
    # zeta_id (held by u1) ranks below alpha_id, so it goes first and alpha_id stays;
    # in the message's order alpha_id would be dropped first, then zeta_id too.
    feed = Feed()
    feed.server("track", event="x", userId="u1",
                context={"externalIds": [{"id": "z1", "type": "zeta_id"}]})
    event = feed.server("track", event="x", userId="u2", context={"externalIds": [
        {"id": "z1", "type": "zeta_id"}, {"id": "new", "type": "alpha_id"}]})
    assert feed.identifiers(event) == {("user_id", "u2"), ("alpha_id", "new")}


def test_priority_can_be_changed() -> None:
    feed = Feed(IdentityGraph(UnifyRules(priority=("email", "user_id"))))
    first = feed.server("identify", userId="u1", traits={"email": "shared@x.io"})
    second = feed.server("identify", userId="u2", traits={"email": "shared@x.io"})
    assert feed.profile_of(first) == feed.profile_of(second)
    assert feed.identifiers(second) == {("user_id", "u1"), ("email", "shared@x.io")}


# ---------- merges and caps ----------


def test_merge_joins_two_profiles_and_records_why() -> None:
    feed = Feed()
    browser = feed.browser("page", anonymousId="a1")
    server = feed.server("track", event="Paid", userId="u1")
    link = feed.browser("identify", userId="u1", anonymousId="a1")
    pid = feed.profile_of(link)
    assert feed.profile_of(browser) == feed.profile_of(server) == pid
    profile = feed.graph.profile(pid)
    assert profile is not None
    assert [e["id"] for e in profile["timeline"]] == [browser, server, link]
    [merge] = profile["merges"]
    assert merge["event"] == link and merge["into"] == pid
    # The oldest profile (the visitor's) takes in the one the server started.
    assert pid == feed.graph.find("anonymous_id", "a1") == "p1"
    assert merge["via"] == [{"type": "user_id", "value": "u1"}]
    assert "user_id 'u1'" in merge["reason"] and "anonymous_id 'a1'" in merge["reason"]
    # The absorbed profile's id leads to the one it joined.
    assert feed.graph.resolve(merge["absorbed"]) == pid
    assert len(feed.graph.profiles()) == 1


def test_merge_cap() -> None:
    # Without the cap the fourth anonymous profile would merge too.
    feed = Feed(IdentityGraph(UnifyRules(max_merges=2)))
    pages = [feed.browser("page", anonymousId=f"a{n}") for n in range(4)]
    for n in range(4):
        last = feed.browser("identify", userId="u1", anonymousId=f"a{n}")
    assert len({feed.profile_of(e) for e in pages[:3]}) == 1
    assert feed.profile_of(pages[3]) != feed.profile_of(pages[0])
    profile = feed.graph.profile(feed.profile_of(last))
    assert profile is not None and profile["mergeCount"] == 2
    assert [(r["rule"], r["value"]) for r in profile["refusals"]] == [("merge_cap", "a3")]
    assert "would make 3 merges (cap 2)" in profile["refusals"][0]["reason"]


def test_identifier_cap() -> None:
    # Without the cap the profile would take a fourth identifier.
    feed = Feed(IdentityGraph(UnifyRules(max_identifiers=3)))
    feed.server("track", event="x", userId="u1", anonymousId="a1")
    feed.server("track", event="x", userId="u1", anonymousId="a2")
    event = feed.server("track", event="x", userId="u1", anonymousId="a3")
    assert feed.identifiers(event) == {("user_id", "u1"), ("anonymous_id", "a1"),
                                       ("anonymous_id", "a2")}
    profile = feed.graph.profile(feed.profile_of(event))
    assert profile is not None
    assert [r["rule"] for r in profile["refusals"]] == ["identifier_cap"]


# ---------- alias ----------


def test_alias_links_the_previous_anonymous_id() -> None:
    feed = Feed()
    page = feed.browser("page", anonymousId="a1")
    alias = feed.browser("alias", userId="u1", previousId="a1")
    assert feed.profile_of(page) == feed.profile_of(alias)
    assert feed.identifiers(alias) == {("user_id", "u1"), ("anonymous_id", "a1")}


def test_alias_of_two_user_ids_is_refused() -> None:
    feed = Feed()
    old = feed.server("identify", userId="old")
    alias = feed.server("alias", userId="new", previousId="old")
    assert feed.profile_of(old) != feed.profile_of(alias)
    profile = feed.graph.profile(feed.profile_of(alias))
    assert profile is not None
    assert [(r["rule"], r["type"], r["value"]) for r in profile["refusals"]] == [
        ("value_limit", "user_id", "old")]


# ---------- the graph as a whole ----------


def test_same_messages_same_graph() -> None:
    def build() -> Feed:
        feed = Feed()
        feed.browser("page", anonymousId="a1")
        feed.browser("identify", userId="u1", anonymousId="a1")
        feed.server("track", event="x", userId="u1", anonymousId="a1")
        feed.browser("page", anonymousId="a2")
        feed.browser("identify", userId="u2", anonymousId="a2")
        return feed

    assert build().graph.profiles() == build().graph.profiles()
    feed = build()
    assert [p["id"] for p in feed.graph.profiles()] == ["p1", "p2"]
    feed.graph.clear()
    assert feed.graph.profiles() == [] and feed.graph.profile("p1") is None


def test_profiles_summary() -> None:
    feed = Feed()
    feed.browser("page", anonymousId="a1")
    feed.server("track", event="x", userId="u1", anonymousId="a1")
    feed.browser("identify", userId="u1", anonymousId="a1", traits={"plan": "pro"})
    [summary] = feed.graph.profiles()
    assert summary["sources"] == {"browser": 2, "segment-client": 1}
    assert summary["events"] == 3 and summary["merges"] == 0
    assert summary["identifiers"] == [{"type": "user_id", "value": "u1"},
                                      {"type": "anonymous_id", "value": "a1"}]
    assert summary["traits"] == {"plan": "pro"}
