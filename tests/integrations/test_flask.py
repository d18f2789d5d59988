"""The Flask extension through Flask's test client and the example app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from segment_client import ConfigurationError
from segment_client._scope import current_defaults
from segment_client.integrations.flask import Segment, current_client
from tests.integrations.conftest import Recorder

HEADERS = {
    "User-Agent": "Mozilla/5.0 (test)",
    "Referer": "https://example.com/pricing",
    "Accept-Language": "de, en;q=0.5",
    "X-Request-ID": "req-7",
    "X-Forwarded-For": "198.51.100.9, 203.0.113.7",
}


@pytest.fixture
def app(recorder: Recorder) -> Iterator[Flask]:
    from flask_app import create_app

    yield create_app({"SEGMENT_CLIENT": recorder, "TESTING": True})


def _browser(app: Flask) -> object:
    browser = app.test_client()
    browser.set_cookie("ajs_anonymous_id", "%22anon-2%22")
    browser.set_cookie("ajs_user_id", "%22cookie-user%22")
    return browser


def test_view_sends_one_message_with_request_context(app: Flask, recorder: Recorder) -> None:
    response = _browser(app).get("/signup?ref=ad", headers=HEADERS)  # type: ignore[attr-defined]
    assert response.status_code == 200
    (message,) = recorder.messages()
    assert message["messageId"] == response.json["messageId"]
    assert (message["anonymousId"], message["userId"]) == ("anon-2", "cookie-user")
    context = dict(message["context"])  # type: ignore[call-overload]
    del context["library"]
    assert context == {
        "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0 (test)",
        "page": {
            "path": "/signup",
            "search": "?ref=ad",
            "url": "http://localhost/signup?ref=ad",
            "referrer": "https://example.com/pricing",
        },
        "locale": "de",
        "requestId": "req-7",
    }
    assert current_defaults() is None


def test_caller_fields_win(app: Flask, recorder: Recorder) -> None:
    _browser(app).get("/checkout", headers=HEADERS)  # type: ignore[attr-defined]
    (message,) = recorder.messages()
    assert message["context"]["ip"] == "0.0.0.0"  # type: ignore[index]
    assert message["context"]["campaign"] == {"name": "x"}  # type: ignore[index]
    assert message["context"]["locale"] == "de"  # type: ignore[index]


def test_identify_once_per_session(app: Flask, recorder: Recorder) -> None:
    browser = _browser(app)
    browser.get("/login?user=u-1&plan=pro")  # type: ignore[attr-defined]
    for _ in range(3):
        browser.get("/signup")  # type: ignore[attr-defined]
    messages = recorder.messages()
    identifies = [m for m in messages if m["type"] == "identify"]
    assert len(identifies) == 1
    assert (identifies[0]["userId"], identifies[0]["anonymousId"]) == ("u-1", "anon-2")
    assert identifies[0]["traits"] == {"plan": "pro"}
    assert [m["userId"] for m in messages if m["type"] == "track"] == ["u-1"] * 3
    # A second browser session for the same user is identified again (once).
    other = _browser(app)
    other.get("/login?user=u-1&plan=pro")  # type: ignore[attr-defined]
    other.get("/signup")  # type: ignore[attr-defined]
    other.get("/signup")  # type: ignore[attr-defined]
    assert [m["type"] for m in recorder.messages()].count("identify") == 2


def test_identify_interval_without_sessions(recorder: Recorder) -> None:
    """Without a secret key the marker lives in memory; interval 0 identifies each time."""
    app = Flask(__name__)
    app.config.update(
        SEGMENT_CLIENT=recorder,
        SEGMENT_IDENTIFY=lambda req: (req.args["u"], None),
        SEGMENT_IDENTIFY_INTERVAL=0,
    )
    Segment(app)

    @app.get("/")
    def index() -> str:
        return "ok"

    browser = app.test_client()
    for _ in range(2):
        browser.get("/?u=u-5")
    assert [m["type"] for m in recorder.messages()] == ["identify", "identify"]


def test_identify_function_errors_never_break_the_request(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    app = Flask(__name__)

    def broken(req: object) -> None:
        raise RuntimeError("boom")

    app.config.update(SEGMENT_CLIENT=recorder, SEGMENT_IDENTIFY=broken)
    Segment(app)

    @app.get("/")
    def index() -> str:
        current_client().track("u-9", "Viewed")
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert [m["event"] for m in recorder.messages()] == ["Viewed"]
    assert "identify function raised" in caplog.text


def test_bad_config_names_the_key() -> None:
    app = Flask(__name__)
    app.config["SEGMENT_TRUSTED_PROXIES"] = ["10.0.0.0/33"]
    with pytest.raises(ConfigurationError, match="SEGMENT_TRUSTED_PROXIES"):
        Segment(app)


def test_current_client_needs_init_app() -> None:
    app = Flask(__name__)
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        current_client()
