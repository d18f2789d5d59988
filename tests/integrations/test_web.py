"""The framework-free request context: IPs, cookies, locales, identify-once."""

from __future__ import annotations

from typing import Any

import pytest

from segment_client import ConfigurationError
from segment_client.integrations._web import (
    MAX_FIELD,
    SESSION_KEY,
    IdentifyTracker,
    RequestFacts,
    WebSettings,
    build_defaults,
    client_ip,
    cookie_id,
    parse_cookie_header,
    parse_locale,
    parse_trusted_proxies,
)


@pytest.mark.parametrize(
    ("remote", "header", "trusted", "expected"),
    [
        ("10.0.0.1", "1.1.1.1", 0, "10.0.0.1"),  # no trust: the header is ignored
        ("10.0.0.1", "6.6.6.6, 1.1.1.1", 1, "1.1.1.1"),  # one proxy: last hop
        ("10.0.0.1", "6.6.6.6, 1.1.1.1, 10.0.0.2", 2, "1.1.1.1"),
        ("10.0.0.1", "1.1.1.1", 2, "10.0.0.1"),  # fewer hops than proxies
        ("10.0.0.1", "6.6.6.6, 1.1.1.1, 10.0.0.9", ["10.0.0.0/8"], "1.1.1.1"),
        ("8.8.8.8", "1.1.1.1", ["10.0.0.0/8"], "8.8.8.8"),  # peer not a trusted proxy
        ("10.0.0.1", "1.1.1.1:5555", ["10.0.0.0/8"], "1.1.1.1"),  # port stripped
        ("10.0.0.1", "[2001:db8::1]:443", 1, "2001:db8::1"),
        ("10.0.0.1", "garbage, 10.0.0.3", ["10.0.0.0/8"], "10.0.0.3"),
        ("10.0.0.1", None, 1, "10.0.0.1"),
    ],
)
def test_client_ip(remote: str, header: str | None, trusted: Any, expected: str) -> None:
    assert client_ip(remote, header, parse_trusted_proxies(trusted)) == expected


@pytest.mark.parametrize("bad", [True, -1, ["10.0.0.0/33"], 1.5])
def test_bad_trusted_proxies(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        parse_trusted_proxies(bad)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("%22abc-123%22", "abc-123"),  # analytics.js classic: URL-encoded JSON string
        ('"abc"', "abc"),
        ("abc-123", "abc-123"),  # analytics-next: bare
        ("user@example.com", "user@example.com"),
        ("%22%22", None),
        ("null", None),
        ("%7Bnot-json", None),
        ('"unterminated', None),
        ("%5B1%5D", None),
        ("123", "123"),
        ("%2242%22", "42"),
        ("x" * 300, None),
        ("", None),
        (None, None),
    ],
)
def test_cookie_id(raw: str | None, expected: str | None) -> None:
    assert cookie_id(raw) == expected


def test_parse_cookie_header_is_lenient() -> None:
    header = 'a=1; ajs_anonymous_id="x"; broken; ajs_user_id=%22u%22; ajs_user_id=second'
    assert parse_cookie_header(header, ["ajs_anonymous_id", "ajs_user_id"]) == {
        "ajs_anonymous_id": '"x"',
        "ajs_user_id": "%22u%22",
    }


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("en-US,en;q=0.9", "en-US"),
        ("fr;q=0.5, de;q=0.8", "de"),
        ("*", None),
        ("en;q=0", None),
        ("x;q=abc, pt-BR", "pt-BR"),
        ("<script>", None),
        (None, None),
    ],
)
def test_parse_locale(header: str | None, expected: str | None) -> None:
    assert parse_locale(header) == expected


def _facts(**headers: str) -> RequestFacts:
    return RequestFacts(
        scheme="https",
        host="shop.example",
        path="/p",
        query="q=" + "x" * 5000,
        remote_addr="10.0.0.1",
        header=headers.get,
        cookies={},
    )


def test_huge_fields_are_clipped_so_messages_stay_small() -> None:
    defaults = build_defaults(_facts(referer="r" * 10_000), WebSettings())
    page = defaults.context["page"]
    assert len(page["url"]) == len(page["search"]) == len(page["referrer"]) == MAX_FIELD


def test_capture_ip_off() -> None:
    assert "ip" not in build_defaults(_facts(), WebSettings(capture_ip=False)).context


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tracker_once_per_session_new_user_or_traits_again() -> None:
    tracker = IdentifyTracker(clock=Clock())
    session: dict[str, Any] = {}
    assert tracker.should_identify("u1", {"plan": "pro"}, session)
    assert not tracker.should_identify("u1", {"plan": "pro"}, session)
    assert tracker.should_identify("u1", {"plan": "team"}, session)
    assert tracker.should_identify("u2", {"plan": "team"}, session)
    assert list(session[SESSION_KEY]) == ["u2"]
    assert tracker.should_identify("u1", {"plan": "team"}, {})  # another session


def test_tracker_interval_and_memory_without_session() -> None:
    clock = Clock()
    tracker = IdentifyTracker(60, clock=clock)
    assert tracker.should_identify("u1", None)
    clock.now += 59
    assert not tracker.should_identify("u1", None)
    clock.now += 1
    assert tracker.should_identify("u1", None)


def test_tracker_memory_is_bounded() -> None:
    tracker = IdentifyTracker(clock=Clock())
    tracker.MEMORY_SIZE = 3
    for user in "abcd":
        assert tracker.should_identify(user, None)
    assert tracker.should_identify("a", None)  # evicted, so identified again
    assert not tracker.should_identify("d", None)


def test_settings_validation_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="IDENT"):
        WebSettings.build(identify="nope", name=lambda key: key.upper()[:5])
    with pytest.raises(ConfigurationError, match="identify_interval"):
        WebSettings.build(identify_interval=-1)
    with pytest.raises(ConfigurationError, match="request_id_headers"):
        WebSettings.build(request_id_headers="x-request-id")
