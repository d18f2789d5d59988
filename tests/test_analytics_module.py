"""segment_client.analytics: analytics-python's module-level API on a default Client."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import segment_client.analytics as analytics
from segment_client import ConfigurationError, __version__
from segment_client.collector import Collector

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "_support" / "analytics_python_script.py"
ORIGINAL_IMPORT = "import segment.analytics as analytics"
NEW_IMPORT = "import segment_client.analytics as analytics"


@pytest.fixture(autouse=True)
def _fresh_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts from the module's defaults and leaves no client behind."""
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    monkeypatch.delenv("SEGMENT_HOST", raising=False)
    saved = {name: getattr(analytics, name) for name in analytics._SETTINGS}
    yield
    analytics.shutdown(5)
    for name, value in saved.items():
        setattr(analytics, name, value)


def _expected(message: dict[str, Any]) -> dict[str, Any]:
    """What analytics-python sends for a call, without the fields it sends as null."""
    return {key: value for key, value in message.items() if value is not None}


def test_an_analytics_python_script_runs_unchanged_but_for_the_import(
    tmp_path: Path,
) -> None:
    source = SCRIPT.read_text()
    assert source.count(ORIGINAL_IMPORT) == 1
    script = tmp_path / "script.py"
    script.write_text(source.replace(ORIGINAL_IMPORT, NEW_IMPORT))
    with Collector() as collector:
        env = {**os.environ, "ANALYTICS_HOST": collector.url}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        result = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "failures: 0" in result.stdout
        messages = collector.messages()
    library = {"name": "segment-client-python", "version": __version__}
    common = {"integrations": {}, "context": {"library": library}}
    expected = [
        {"type": "identify", "userId": "019mr8mf4r", "anonymousId": None,
         "traits": {"email": "john@example.com", "name": "John Smith", "friends": 30},
         "context": {"ip": "192.168.0.1", "library": library}},
        {"type": "track", "userId": "f4ca124298", "event": "Signed Up",
         "properties": {"plan": "Enterprise"}, "timestamp": "2026-11-02T09:30:00.000Z"},
        {"type": "track", "userId": "f4ca124298", "event": "Article Bookmarked",
         "properties": {"title": "Snow Fall", "subtitle": "The Avalanche at Tunnel Creek",
                        "author": "John Branch"},
         "integrations": {"All": False, "Mixpanel": True}},
        {"type": "track", "anonymousId": "a-1234", "userId": None,
         "event": "Viewed Pricing", "properties": {"tier": 2}},
        {"type": "group", "userId": "019mr8mf4r", "groupId": "8e9df332ac",
         "traits": {"name": "Initech", "industry": "Technology"}},
        {"type": "page", "userId": "019mr8mf4r", "category": "Docs", "name": "Python",
         "properties": {"url": "http://segment.com"}},
        {"type": "screen", "userId": "019mr8mf4r", "category": "Onboarding",
         "name": "Welcome", "properties": {"step": 1}},
        {"type": "alias", "previousId": "anonymous-9", "userId": "019mr8mf4r",
         "anonymousId": None},
    ]
    assert [m["type"] for m in messages] == [e["type"] for e in expected]
    for message, wanted in zip(messages, expected, strict=True):
        want = _expected({**common, **wanted})
        # Set on every message by both libraries: a unique id and a UTC timestamp.
        assert len(message.pop("messageId")) == 36
        stamp = message.pop("timestamp")
        assert stamp.endswith("Z")
        if "timestamp" in want:
            assert stamp == want.pop("timestamp")
        assert message == want


def test_import_and_calls_without_a_key_never_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "segment_client")
    message_id = analytics.track("user-1", "Signed Up")
    client = analytics.default_client
    assert client is not None and client.send is False
    assert isinstance(message_id, str)
    assert analytics.flush() is True
    assert [r.getMessage() for r in caplog.records].count(
        "no write key (set analytics.write_key or "
        "$SEGMENT_WRITE_KEY); messages are validated and counted but not sent"
    ) == 1
    assert client.stats().dropped == {"send_disabled": 1}


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "env-key")
    analytics.send = False
    analytics.identify("user-1", {"plan": "pro"})
    assert analytics.default_client is not None
    assert analytics.default_client._config.write_key == "env-key"


def test_settings_are_read_at_the_first_call_and_later_changes_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    analytics.write_key = "late-key"  # e.g. set in Django's AppConfig.ready
    analytics.send = False
    analytics.upload_size = 7
    analytics.upload_interval = 2.5
    analytics.max_queue_size = 50
    assert analytics.default_client is None  # setting attributes builds nothing
    analytics.page("user-1", "Docs", "Install")
    client = analytics.default_client
    assert client is not None
    assert (client.flush_at, client.flush_interval, client.max_queue_size) == (7, 2.5, 50)
    assert client._config.write_key == "late-key"
    caplog.set_level(logging.WARNING, "segment_client")
    analytics.write_key = "other-key"
    analytics.write_key = "other-key"  # unchanged: not logged again
    assert [r.getMessage() for r in caplog.records] == [
        "write_key changed after the default client was "
        "created; it applies after analytics.shutdown()"
    ]
    assert analytics.default_client is client
    assert analytics.shutdown() is True
    assert analytics.default_client is None
    analytics.page("user-1", "Docs", "Install")  # a new client, with the new key
    assert analytics.default_client is not client
    assert analytics.default_client._config.write_key == "other-key"


def test_flush_at_wins_over_upload_size() -> None:
    analytics.write_key, analytics.send = "k", False
    analytics.flush_at, analytics.upload_size = 3, 9
    analytics.track("u", "E")
    assert analytics.default_client is not None
    assert analytics.default_client.flush_at == 3


def test_a_bad_setting_raises_naming_it_at_the_first_call() -> None:
    analytics.write_key = "k"
    analytics.upload_size = 0
    with pytest.raises(ConfigurationError, match="flush_at"):
        analytics.track("user-1", "Signed Up")
    assert analytics.default_client is None


def test_debug_attaches_one_stderr_handler_at_debug_level() -> None:
    logger = logging.getLogger("segment_client")
    before = list(logger.handlers)
    analytics.debug = True
    analytics.debug = True  # idempotent: still one handler
    added = [h for h in logger.handlers if h not in before]
    assert len(added) == 1
    handler = added[0]
    assert isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr
    assert logger.getEffectiveLevel() == logging.DEBUG
    analytics.debug = False
    assert logger.handlers == before
    assert logger.level == logging.NOTSET


def test_log_handler_is_attached_and_replaced() -> None:
    logger = logging.getLogger("segment_client")
    first, second = logging.NullHandler(), logging.NullHandler()
    analytics.log_handler = first
    assert first in logger.handlers
    analytics.log_handler = second
    assert first not in logger.handlers and second in logger.handlers
    analytics.log_handler = None
    assert second not in logger.handlers


def test_join_delivers_what_is_queued(make_client: Any) -> None:
    from segment_client.testing import RecordingTransport

    transport = RecordingTransport()
    analytics.default_client = make_client(transport=transport, flush_interval=60)
    analytics.track("user-1", "One")
    analytics.alias("anon-1", "user-1")
    assert analytics.join() is True
    assert [m["type"] for m in transport.messages] == ["track", "alias"]
    assert analytics.default_client is None
    assert analytics.flush() is True  # nothing to flush: no client is created
    assert analytics.default_client is None


def test_oauth_settings_need_all_three() -> None:
    analytics.write_key = "k"
    analytics.oauth_client_id = "client"
    with pytest.raises(ConfigurationError, match="OAuthSettings"):
        analytics.track("user-1", "Signed Up")
