"""Django: an app and a middleware, configured by the `SEGMENT` settings dict.

```python
INSTALLED_APPS = [..., "segment_client.integrations.django.SegmentConfig"]
MIDDLEWARE = [
    ...,
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "segment_client.integrations.django.SegmentMiddleware",  # after auth, to see request.user
]
SEGMENT = {
    "WRITE_KEY": "...",                 # or $SEGMENT_WRITE_KEY
    "OPTIONS": {"flush_at": 100},       # any other Client(...) keyword
    "IDENTIFY": "myapp.analytics.identify_user",   # request -> (user_id, traits) | None
    "TRUSTED_PROXIES": 1,
}
```

Views use `get_client().track(...)`: every message sent while a request is handled gets
its context (ip, userAgent, page, locale, requestId) and the ids of analytics.js cookies,
unless the call gives them. One client per process, built on first use (so a server that
forks after loading the app, gunicorn --preload or uWSGI, gets one per worker) and closed
at interpreter exit. Sync and async views and middleware stacks are both supported.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._common import LazyClient, check_client_options, missing_dependency

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
    from django.apps import AppConfig
    from django.conf import settings as django_settings
    from django.core.signals import setting_changed
    from django.utils.encoding import escape_uri_path
    from django.utils.module_loading import import_string
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_dependency("django", "django", exc) from exc

from segment_client import Client, ConfigurationError

from ._web import RequestFacts, RequestScope, WebSettings, identify_user

__all__ = ["SegmentConfig", "SegmentMiddleware", "authenticated_user", "get_client"]

_KEYS = {
    "WRITE_KEY", "HOST", "OPTIONS", "CLIENT", "IDENTIFY", "IDENTIFY_INTERVAL",
    "TRUSTED_PROXIES", "REQUEST_ID_HEADERS", "CAPTURE_IP", "ANONYMOUS_ID_COOKIE",
    "USER_ID_COOKIE",
}


@dataclass(frozen=True)
class _Config:
    factory: Callable[[], Client]
    web: WebSettings


def _callable_setting(name: str, value: object) -> Callable[..., Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise ConfigurationError(f"SEGMENT[{name!r}]: cannot import {value!r}: {exc}") from exc
    if not callable(value):
        raise ConfigurationError(
            f"SEGMENT[{name!r}] must be a function or its dotted path, got {value!r}"
        )
    return value


def _load_config() -> _Config:
    raw = getattr(django_settings, "SEGMENT", None) or {}
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"settings.SEGMENT must be a dict, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigurationError(
            f"settings.SEGMENT has unknown keys {unknown}; expected some of {sorted(_KEYS)}"
        )
    options = raw.get("OPTIONS") or {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"SEGMENT['OPTIONS'] must be a dict, got {options!r}")
    factory = _callable_setting("CLIENT", raw.get("CLIENT"))
    if factory is None:
        write_key, host = raw.get("WRITE_KEY"), raw.get("HOST")
        check_client_options(write_key, host, options, "settings.SEGMENT")

        def factory() -> Client:
            return Client(write_key, host=host, **options)

    web = WebSettings.build(
        trusted_proxies=raw.get("TRUSTED_PROXIES"),
        identify=_callable_setting("IDENTIFY", raw.get("IDENTIFY")),
        identify_interval=raw.get("IDENTIFY_INTERVAL"),
        request_id_headers=raw.get("REQUEST_ID_HEADERS"),
        capture_ip=raw.get("CAPTURE_IP", True),
        anonymous_id_cookie=raw.get("ANONYMOUS_ID_COOKIE", "ajs_anonymous_id"),
        user_id_cookie=raw.get("USER_ID_COOKIE", "ajs_user_id"),
        name=lambda key: f"SEGMENT[{key.upper()!r}]",
    )
    return _Config(factory, web)


_config_lock = threading.Lock()
_config: _Config | None = None


def _get_config() -> _Config:
    global _config
    config = _config
    if config is None:
        with _config_lock:
            if _config is None:
                _config = _load_config()
            config = _config
    return config


def _build_client() -> Client:
    client = _get_config().factory()
    if not isinstance(client, Client):
        raise ConfigurationError(f"SEGMENT['CLIENT'] must return a Client, got {client!r}")
    return client


_client = LazyClient(_build_client)


def get_client() -> Client:
    """This process's client, built from `settings.SEGMENT` on first use. Thread-safe."""
    return _client.get()


def _settings_changed(*, setting: str, **_: Any) -> None:
    # override_settings(SEGMENT=...) in tests: the next use reads the new settings.
    global _config
    if setting == "SEGMENT":
        with _config_lock:
            _config = None
        _client.close(5.0)


setting_changed.connect(_settings_changed, dispatch_uid="segment_client.settings_changed")


def authenticated_user(request: Any) -> tuple[str, None] | None:
    """A ready identify function: the logged-in user's primary key, no traits."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk), None


class SegmentConfig(AppConfig):  # type: ignore[misc]
    """The Django app: validates `settings.SEGMENT` at startup."""

    name = "segment_client.integrations.django"
    label = "segment_client"
    verbose_name = "Segment"

    def ready(self) -> None:
        # Configuration errors surface at startup, not on the first request. The client
        # itself is not built here: the server may still fork.
        _get_config()


def _facts(request: Any) -> RequestFacts:
    meta = request.META
    try:
        host = request.get_host()
    except Exception:  # noqa: BLE001 - DisallowedHost: Django answers 400 itself
        host = meta.get("SERVER_NAME", "")
    return RequestFacts(
        scheme=request.scheme,
        host=host,
        path=escape_uri_path(request.path),
        query=meta.get("QUERY_STRING", ""),
        remote_addr=meta.get("REMOTE_ADDR"),
        header=lambda name: meta.get("HTTP_" + name.upper().replace("-", "_")),
        cookies=request.COOKIES,
    )


class SegmentMiddleware:
    """Sets the request context for messages sent while a request is handled.

    Works in sync and async stacks (Django picks the mode). Never flushes per request.
    Put it after `AuthenticationMiddleware` when `SEGMENT['IDENTIFY']` reads `request.user`.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)
        web = _get_config().web
        scope = RequestScope()
        scope.begin(lambda: _facts(request), web)
        try:
            if web.identify is not None:
                scope.set_user(
                    identify_user(get_client, web, request, getattr(request, "session", None))
                )
            return self.get_response(request)
        finally:
            scope.end()

    async def __acall__(self, request: Any) -> Any:
        web = _get_config().web
        scope = RequestScope()
        scope.begin(lambda: _facts(request), web)
        try:
            if web.identify is not None:
                # request.user and the session may hit the database: not on the loop.
                user_id = await sync_to_async(identify_user)(
                    get_client, web, request, getattr(request, "session", None)
                )
                scope.set_user(user_id)
            response: Awaitable[Any] = self.get_response(request)
            return await response
        finally:
            scope.end()
