"""The Django integration through Django's test clients and the example site."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator

import pytest

from tests.integrations.conftest import EXAMPLES, Recorder

sys.path.insert(0, str(EXAMPLES / "django_project"))
os.environ["DJANGO_SETTINGS_MODULE"] = "example_site.settings"

import django
from django.conf import settings
from django.test import AsyncClient, Client, override_settings

from segment_client import ConfigurationError, context_defaults
from segment_client._scope import current_defaults
from segment_client.integrations import django as segment_django

django.setup()

COOKIES = {"ajs_anonymous_id": "%22anon-1%22", "ajs_user_id": "%22cookie-user%22"}
HEADERS = {
    "user-agent": "Mozilla/5.0 (test)",
    "referer": "https://example.com/pricing",
    "accept-language": "fr-CH, fr;q=0.9, en;q=0.8",
    "x-request-id": "req-42",
    "x-forwarded-for": "198.51.100.9, 203.0.113.7",
}


@pytest.fixture
def segment(recorder: Recorder) -> Iterator[Recorder]:
    with override_settings(SEGMENT={**settings.SEGMENT, "CLIENT": recorder}):
        yield recorder
    segment_django._client.close(5)


def _client(cls: type = Client) -> Client:
    client = cls(headers=HEADERS)
    for name, value in COOKIES.items():
        client.cookies[name] = value
    return client


def _expected_context(path: str) -> dict[str, object]:
    return {
        "ip": "203.0.113.7",  # TRUSTED_PROXIES = 1: the last hop, not the spoofable first
        "userAgent": "Mozilla/5.0 (test)",
        "page": {
            "path": path,
            "search": "?ref=ad",
            "url": f"http://testserver{path}?ref=ad",
            "referrer": "https://example.com/pricing",
        },
        "locale": "fr-CH",
        "requestId": "req-42",
    }


def test_sync_view_sends_one_message_with_request_context(segment: Recorder) -> None:
    response = _client().get("/signup?ref=ad")
    assert response.status_code == 200
    messages = segment.messages()
    assert len(messages) == 1
    (message,) = messages
    assert message["messageId"] == response.json()["messageId"]
    assert message["event"] == "Signed Up"
    assert message["anonymousId"] == "anon-1"
    assert message["userId"] == "cookie-user"
    context = dict(message["context"])  # type: ignore[call-overload]
    assert context.pop("library")["name"] == "segment-client-python"
    assert context == _expected_context("/signup")
    assert current_defaults() is None  # nothing leaks past the request


def test_async_view_gets_the_same_context(segment: Recorder) -> None:
    client = AsyncClient()
    for name, value in COOKIES.items():
        client.cookies[name] = value
    # AsyncClient applies per-request headers (its constructor's go into the scope).
    response = asyncio.run(client.get("/async-signup?ref=ad", headers=HEADERS))
    assert response.status_code == 200
    (message,) = segment.messages()
    assert message["properties"] == {"source": "async"}
    assert (message["anonymousId"], message["userId"]) == ("anon-1", "cookie-user")
    context = dict(message["context"])  # type: ignore[call-overload]
    del context["library"]
    assert context == _expected_context("/async-signup")


def test_no_client_is_built_before_first_use(segment: Recorder) -> None:
    assert not segment_django._client.built
    assert segment.clients == []
    _client().get("/signup")
    assert segment_django._client.built
    assert len(segment.clients) == 1
    _client().get("/signup")
    assert len(segment.clients) == 1  # one per process, not per request


def test_logged_in_user_is_identified_once_per_session(segment: Recorder) -> None:
    browser = _client()
    browser.get("/login?user=u-7&plan=pro")
    for _ in range(3):
        assert browser.get("/signup").status_code == 200
    messages = segment.messages()
    identifies = [m for m in messages if m["type"] == "identify"]
    tracks = [m for m in messages if m["type"] == "track"]
    assert len(identifies) == 1
    assert identifies[0]["userId"] == "u-7"
    assert identifies[0]["traits"] == {"plan": "pro"}
    assert identifies[0]["anonymousId"] == "anon-1"  # stitched to the browser
    assert len(tracks) == 3
    # The logged-in user wins over the ajs_user_id cookie.
    assert {m["userId"] for m in tracks} == {"u-7"}


def test_changed_traits_identify_again(segment: Recorder) -> None:
    browser = _client()
    browser.get("/login?user=u-7&plan=pro")
    browser.get("/signup")
    browser.get("/login?user=u-7&plan=team")
    browser.get("/signup")
    identifies = [m for m in segment.messages() if m["type"] == "identify"]
    assert [m["traits"] for m in identifies] == [{"plan": "pro"}, {"plan": "team"}]


def test_async_stack_identifies_once(segment: Recorder) -> None:
    async def visit() -> None:
        browser = AsyncClient()
        browser.cookies["ajs_anonymous_id"] = COOKIES["ajs_anonymous_id"]
        await browser.get("/login?user=u-8")
        for _ in range(2):
            await browser.get("/async-signup")

    asyncio.run(visit())
    messages = segment.messages()
    assert [m["type"] for m in messages].count("identify") == 1
    assert [m["userId"] for m in messages if m["type"] == "track"] == ["u-8", "u-8"]


def test_bad_cookie_values_are_ignored(segment: Recorder) -> None:
    browser = Client()
    browser.cookies["ajs_anonymous_id"] = "%7Bnot-json"
    browser.cookies["ajs_user_id"] = "%22ok-user%22"
    assert browser.get("/signup").status_code == 200
    (message,) = segment.messages()
    assert message["userId"] == "ok-user"
    assert "anonymousId" not in message


def test_defaults_set_outside_the_request_are_kept_underneath(segment: Recorder) -> None:
    with context_defaults(context={"app": {"name": "web"}, "ip": "10.9.9.9"}):
        _client().get("/signup")
    (message,) = segment.messages()
    assert message["context"]["app"] == {"name": "web"}  # type: ignore[index]
    assert message["context"]["ip"] == "203.0.113.7"  # type: ignore[index]


def test_unknown_setting_is_a_clear_error() -> None:
    with (
        override_settings(SEGMENT={"WRITE_KEY": "k", "FLUSH_AT": 5}),
        pytest.raises(ConfigurationError, match="FLUSH_AT"),
    ):
        segment_django.get_client()
