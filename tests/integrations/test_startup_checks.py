"""Every integration checks its options when the app starts, naming the key, and builds
nothing doing so (no client, no thread); the Lambda helpers refuse a number as context."""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterator

import pytest

from segment_client import Client, ConfigurationError
from tests.integrations.conftest import EXAMPLES

sys.path.insert(0, str(EXAMPLES / "django_project"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.settings")

import django

django.setup()

CONSUMER_THREAD = "segment_client.consumer"


def _clients() -> set[int]:
    # type(), not isinstance(): the latter would evaluate lazy proxies (Django settings).
    return {id(obj) for obj in gc.get_objects() if type(obj) is Client}


@pytest.fixture(autouse=True)
def _nothing_started(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No Client is built and no consumer thread started by the checks."""
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    before = _clients()
    threads = {t for t in threading.enumerate() if t.name == CONSUMER_THREAD}
    yield
    assert _clients() <= before
    assert {t for t in threading.enumerate() if t.name == CONSUMER_THREAD} <= threads


def test_django_unknown_option_fails_at_startup() -> None:
    from django.test import override_settings

    from segment_client.integrations import django as segment_django

    with (
        override_settings(SEGMENT={"WRITE_KEY": "k", "OPTIONS": {"flush_atx": 5}}),
        pytest.raises(ConfigurationError, match=r"^settings.SEGMENT: 'flush_atx' is not a "
                      r"Client option; expected some of: .*flush_at"),
    ):
        segment_django._load_config()  # what SegmentConfig.ready() runs


def test_django_ready_checks_the_options() -> None:
    from django.apps import apps
    from django.test import override_settings

    with (
        override_settings(SEGMENT={"WRITE_KEY": "k", "OPTIONS": {"not_an_option": 1}}),
        pytest.raises(ConfigurationError, match="'not_an_option'"),
    ):
        apps.get_app_config("segment_client").ready()


def test_django_without_a_key_still_starts() -> None:
    from django.test import override_settings

    from segment_client.integrations import django as segment_django

    with override_settings(SEGMENT={"OPTIONS": {"flush_at": 10}}):
        segment_django._load_config()


def test_flask_unknown_option_fails_at_init_app() -> None:
    from flask import Flask

    from segment_client.integrations.flask import Segment

    app = Flask(__name__)
    app.config["SEGMENT_WRITE_KEY"] = "k"
    app.config["SEGMENT_OPTIONS"] = {"flush_at": 10, "upload_size": 5}
    with pytest.raises(
        ConfigurationError, match=r"^SEGMENT_OPTIONS: 'upload_size' is not a Client option"
    ):
        Segment(app)


def test_flask_host_in_options_is_refused() -> None:
    from flask import Flask

    from segment_client.integrations.flask import Segment

    app = Flask(__name__)
    app.config["SEGMENT_OPTIONS"] = {"host": "http://127.0.0.1:1"}
    with pytest.raises(ConfigurationError, match="'host' is not a Client option"):
        Segment(app)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"shutdown_timeout": -1}, "shutdown_timeout"),
        ({"shutdown_timeout": "5"}, "shutdown_timeout"),
        ({"close_on_shutdown": "yes"}, "close_on_shutdown"),
    ],
)
def test_asgi_bad_options_fail_in_the_constructor(options: dict[str, object], key: str) -> None:
    from segment_client.integrations.asgi import SegmentMiddleware

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    with pytest.raises(ConfigurationError, match=f"^{key} must be"):
        SegmentMiddleware(app, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "key"),
    [({"shutdown_timeout": -0.5}, "shutdown_timeout"), ({"propagate": 1}, "propagate")],
)
def test_celery_bad_options_fail_in_the_constructor(options: dict[str, object], key: str) -> None:
    from segment_client.integrations.celery import SegmentCelery

    with pytest.raises(ConfigurationError, match=f"^{key} must be"):
        SegmentCelery(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lambda_client() -> Iterator[Client]:
    client = Client("k", send=False)
    yield client
    client.close_and_flush(1)


@pytest.mark.parametrize("context", [2, 2.5, "2"])
def test_lambda_helpers_refuse_a_number_as_the_context(
    context: object, lambda_client: Client
) -> None:
    from segment_client.integrations.aws_lambda import flush_now, flushing

    client = lambda_client
    try:
        with pytest.raises(
            ConfigurationError,
            match=r"^flush_now\(client, .*\): the second argument is the Lambda context; "
            r"pass a bound as timeout=",
        ):
            flush_now(client, context)
        with pytest.raises(ConfigurationError, match=r"^flushing\(client, "), flushing(
            client, context
        ):
            pass
    finally:
        assert client.flush(1)


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ({"WRITE_KEY": "k", "OPTIONS": {"flush_at": 0}},
         "settings.SEGMENT: flush_at must be >= 1 and <= 2500, got 0"),
        ({"WRITE_KEY": "k", "HOST": "http://127.0.0.1:1/v1/batch"},
         "settings.SEGMENT: host must be the server's base URL without a path"),
        ({"WRITE_KEY": 5}, "the write key must be a non-empty string, got int"),
        ({"WRITE_KEY": "k", "OPTIONS": {"tracking_plan": {"rules": []},
                                        "on_violation": "explode"}},
         "settings.SEGMENT: on_violation must be 'raise', 'report' or 'drop'"),
    ],
)
def test_django_bad_values_fail_at_startup(segment: dict[str, object], expected: str) -> None:
    from django.test import override_settings

    from segment_client.integrations import django as segment_django

    with override_settings(SEGMENT=segment), pytest.raises(ConfigurationError) as raised:
        segment_django._load_config()
    assert str(raised.value).startswith(expected)


def test_flask_bad_value_fails_at_init_app() -> None:
    from flask import Flask

    from segment_client.integrations.flask import Segment

    app = Flask(__name__)
    app.config["SEGMENT_OPTIONS"] = {"request_timeout": -1}
    with pytest.raises(
        ConfigurationError, match=r"^SEGMENT_OPTIONS: request_timeout must be > 0"
    ):
        Segment(app)
