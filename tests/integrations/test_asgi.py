"""The ASGI middleware through FastAPI's TestClient and the example app."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from segment_client import Client
from segment_client._scope import current_defaults
from segment_client.integrations.asgi import SegmentMiddleware
from segment_client.testing import RecordingTransport
from tests.integrations.conftest import Recorder

HEADERS = {
    "user-agent": "Mozilla/5.0 (test)",
    "referer": "https://example.com/pricing",
    "accept-language": "en-GB,en;q=0.9",
    "x-request-id": "req-9",
    "x-forwarded-for": "198.51.100.9, 203.0.113.7",
    "cookie": 'ajs_anonymous_id=%22anon-3%22; other="x y"; ajs_user_id=cookie-user',
}


def _app(recorder: Recorder) -> Any:
    from fastapi_app import create_app

    return create_app(client=recorder)


@pytest.mark.parametrize("path", ["/signup", "/sync-signup"])
def test_request_context_and_cookie_ids(recorder: Recorder, path: str) -> None:
    with TestClient(_app(recorder)) as browser:
        response = browser.get(f"{path}?ref=ad", headers=HEADERS)
        assert response.status_code == 200
        (message,) = recorder.messages()
    assert message["messageId"] == response.json()["messageId"]
    # Bare (analytics-next) and JSON-quoted (analytics.js classic) cookie values.
    assert (message["anonymousId"], message["userId"]) == ("anon-3", "cookie-user")
    context = dict(message["context"])
    del context["library"]
    assert context == {
        "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0 (test)",
        "page": {
            "path": path,
            "search": "?ref=ad",
            "url": f"http://testserver{path}?ref=ad",
            "referrer": "https://example.com/pricing",
        },
        "locale": "en-GB",
        "requestId": "req-9",
    }
    assert current_defaults() is None


def test_identify_once_and_lifespan_close(recorder: Recorder) -> None:
    with TestClient(_app(recorder)) as browser:
        for _ in range(3):
            browser.get("/signup", headers={**HEADERS, "x-demo-user": "u-3"})
        # No flush here: the lifespan shutdown must deliver everything.
    messages = recorder.transport.messages
    assert [m["type"] for m in messages] == ["identify", "track", "track", "track"]
    assert messages[0]["userId"] == "u-3" and messages[0]["anonymousId"] == "anon-3"
    assert {m["userId"] for m in messages[1:]} == {"u-3"}
    (client,) = recorder.clients
    stats = client.stats()
    assert (stats.delivered, stats.queue_depth) == (4, 0)
    # Closed by the shutdown: a later call is dropped and counted as such.
    client.track("u-3", "After Shutdown")
    assert client.stats().dropped == {"closed": 1}


def test_app_started_again_builds_a_new_client(recorder: Recorder) -> None:
    app = _app(recorder)
    for _ in range(2):
        with TestClient(app) as browser:
            browser.get("/signup", headers=HEADERS)
    assert len(recorder.clients) == 2
    assert len(recorder.transport.messages) == 2


def test_async_identify_function_and_a_client_the_app_owns() -> None:
    transport = RecordingTransport()
    client = Client("k", transport=transport)
    seen: list[str] = []

    async def identify(scope: Any) -> tuple[str, None]:
        await asyncio.sleep(0)
        return "u-async", None

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].removeprefix("lifespan.")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] == "http":
            defaults = current_defaults()
            assert defaults is not None and defaults.user_id == "u-async"
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    app = SegmentMiddleware(inner, client=client, identify=identify, close_on_shutdown=False)
    with TestClient(app) as browser:
        assert browser.get("/").status_code == 204
    assert client.flush(5)
    assert [(m["type"], m["userId"]) for m in transport.messages] == [("identify", "u-async")]
    # close_on_shutdown=False: the lifespan shutdown left the caller's client open.
    assert client.track("u-async", "Still Open") and client.flush(5)
    assert len(transport.messages) == 2
    client.close_and_flush(5)
    assert seen == ["lifespan", "http"]
