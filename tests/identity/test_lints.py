"""Each identity lint: a scenario that triggers it and a close one that does not."""

from __future__ import annotations

from segment_client.collector._identity import IdentityGraph
from segment_client.collector._lints import LINT_CODES, lint
from segment_client.collector._unify_rules import UnifyRules

from ._scenario import Feed


def codes(feed: Feed) -> list[str]:
    return [item.code for item in lint(feed.graph)]


def only(feed: Feed, code: str) -> dict[str, object]:
    found = [item.to_dict() for item in lint(feed.graph) if item.code == code]
    assert len(found) == 1, found
    item = found[0]
    assert item["fix"] and len(str(item["fix"]).splitlines()) == 1
    return item


def stitched_visit(feed: Feed, user: str = "u1", anon: str = "a1") -> list[int]:
    """A healthy visit: browser page and identify, server track with the browser's id."""
    return [
        feed.browser("page", anonymousId=anon),
        feed.browser("identify", userId=user, anonymousId=anon, traits={"plan": "pro"}),
        feed.server("track", event="Paid", userId=user, anonymousId=anon),
    ]


def test_a_healthy_graph_has_no_lints() -> None:
    feed = Feed()
    stitched_visit(feed)
    stitched_visit(feed, "u2", "a2")
    assert codes(feed) == []
    assert sorted(LINT_CODES) == sorted(set(LINT_CODES))


def test_server_anonymous_id_the_browser_never_used() -> None:
    feed = Feed()
    stitched_visit(feed)
    stray = feed.server("track", event="Paid", userId="u1", anonymousId="server-made")
    item = only(feed, "server_anonymous_id_unknown")
    assert item["events"] == [stray]
    assert item["profiles"] == [feed.profile_of(stray)]
    assert "'server-made'" in str(item["message"]) and "'a1'" in str(item["message"])
    assert "ajs_anonymous_id" in str(item["fix"])


def test_server_anonymous_id_without_browser_events_is_fine() -> None:
    # A server-only user: nothing to stitch with.
    feed = Feed()
    feed.server("identify", userId="u1", anonymousId="server-made", traits={"a": 1})
    feed.server("track", event="Paid", userId="u1", anonymousId="server-made")
    assert codes(feed) == []


def test_blocked_user_id() -> None:
    feed = Feed()
    first = feed.browser("identify", userId="null", anonymousId="a1", traits={"a": 1})
    second = feed.server("track", event="x", userId="null", anonymousId="a2")
    item = only(feed, "blocked_user_id")
    assert item["events"] == [first, second]
    assert item["profiles"] == sorted([feed.profile_of(first), feed.profile_of(second)])
    assert "'null'" in str(item["message"])


def test_a_real_user_id_is_not_blocked() -> None:
    feed = Feed()
    feed.browser("identify", userId="null-hypothesis", anonymousId="a1", traits={"a": 1})
    assert codes(feed) == []


def test_identify_without_traits_on_every_request() -> None:
    feed = Feed()
    stitched_visit(feed)
    calls = [feed.server("identify", userId="u1", anonymousId="a1") for _ in range(3)]
    item = only(feed, "identify_without_traits")
    assert item["events"] == calls
    assert "3 identify calls without traits for userId 'u1' from segment-client" in str(
        item["message"])


def test_identify_with_traits_or_rarely_is_fine() -> None:
    feed = Feed()
    stitched_visit(feed)
    feed.server("identify", userId="u1", anonymousId="a1")
    feed.server("identify", userId="u1", anonymousId="a1")
    for _ in range(3):
        feed.server("identify", userId="u1", anonymousId="a1", traits={"plan": "pro"})
    assert codes(feed) == []


def test_alias_chain() -> None:
    feed = Feed()
    first = feed.server("alias", previousId="a1", userId="u-old")
    second = feed.server("alias", previousId="u-old", userId="u-new")
    item = only(feed, "alias_chain")
    assert item["events"] == [first, second]
    assert "'a1' -> 'u-old' -> 'u-new'" in str(item["message"])


def test_aliases_to_one_user_are_no_chain() -> None:
    feed = Feed()
    feed.server("alias", previousId="a1", userId="u1")
    feed.server("alias", previousId="a2", userId="u1")
    assert codes(feed) == []


def test_browser_and_server_disagree_within_a_session() -> None:
    # The server kept the first anonymousId in its own session across a browser reset.
    feed = Feed()
    stitched_visit(feed)
    new_page = feed.browser("page", anonymousId="a9", userId="u1")
    stale = feed.server("track", event="Paid", userId="u1", anonymousId="a1", gap=40)
    later = feed.browser("page", anonymousId="a9", userId="u1")
    stale_again = feed.server("track", event="Paid", userId="u1", anonymousId="a1")
    item = only(feed, "anonymous_id_mismatch")
    assert item["events"] == [stale, later, stale_again]
    assert "'a9'" in str(item["message"]) and "'a1'" in str(item["message"])
    assert new_page not in item["events"]  # an earlier session


def test_browser_and_server_agree_in_each_session() -> None:
    feed = Feed()
    stitched_visit(feed)
    feed.browser("page", anonymousId="a9", userId="u1", gap=40)  # a new session, new id
    feed.server("track", event="Paid", userId="u1", anonymousId="a9")
    assert codes(feed) == []


def test_merge_cap_reached() -> None:
    feed = Feed(IdentityGraph(UnifyRules(max_merges=1)))
    for n in range(3):
        feed.browser("page", anonymousId=f"a{n}")
    for n in range(3):
        last = feed.server("identify", userId="shared-test", anonymousId=f"a{n}",
                           traits={"a": 1})
    item = only(feed, "merge_cap")
    assert item["events"] == [last]
    assert item["profiles"] == [feed.profile_of(last)]


def test_merges_under_the_cap_are_fine() -> None:
    feed = Feed(IdentityGraph(UnifyRules(max_merges=2)))
    for n in range(2):
        feed.browser("page", anonymousId=f"a{n}")
    for n in range(2):
        feed.server("identify", userId="u", anonymousId=f"a{n}", traits={"a": 1})
    assert codes(feed) == []


def test_lints_of_one_profile() -> None:
    feed = Feed()
    stitched_visit(feed)
    stray = feed.server("track", event="Paid", userId="u1", anonymousId="other")
    stitched_visit(feed, "u2", "a2")
    pid = feed.profile_of(stray)
    assert [item.code for item in lint(feed.graph, pid)] == ["server_anonymous_id_unknown"]
    assert lint(feed.graph, feed.graph.find("user_id", "u2")) == []
