"""Flask: the `Segment` extension, configured by `SEGMENT_*` config keys.

```python
from segment_client.integrations.flask import Segment, current_client

segment = Segment()          # or Segment(app)

def create_app():
    app = Flask(__name__)
    app.config["SEGMENT_WRITE_KEY"] = "..."
    segment.init_app(app)
    return app

@app.post("/signup")
def signup():
    current_client().track(event="Signed Up")   # ids and context come from the request
```

Every message sent while a request is handled gets its context (ip, userAgent, page,
locale, requestId) and the ids of analytics.js cookies, unless the call gives them.
Each app gets one client per process, built on first use (safe when the server forks
after loading the app) and closed at interpreter exit.

Config keys: `SEGMENT_WRITE_KEY`, `SEGMENT_HOST`, `SEGMENT_OPTIONS` (other `Client`
keywords), `SEGMENT_CLIENT` (a factory returning a Client, instead of the three),
`SEGMENT_IDENTIFY` (`request -> (user_id, traits) | None`), `SEGMENT_IDENTIFY_INTERVAL`,
`SEGMENT_TRUSTED_PROXIES`, `SEGMENT_REQUEST_ID_HEADERS`, `SEGMENT_CAPTURE_IP`,
`SEGMENT_ANONYMOUS_ID_COOKIE`, `SEGMENT_USER_ID_COOKIE`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._common import LazyClient, check_client_options, missing_dependency

try:
    from flask import Flask, current_app, g, has_app_context, request, session
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_dependency("flask", "flask", exc) from exc

from segment_client import Client, ConfigurationError

from ._web import RequestFacts, RequestScope, WebSettings, identify_user

__all__ = ["Segment", "current_client"]

EXTENSION = "segment_client"


class _AppState:
    """What the extension keeps per app in `app.extensions['segment_client']`."""

    def __init__(self, factory: Callable[[], Client], web: WebSettings, use_session: bool):
        self.client = LazyClient(factory)
        self.web = web
        self.use_session = use_session


def _app_state(app: Flask) -> _AppState:
    state = app.extensions.get(EXTENSION)
    if not isinstance(state, _AppState):
        raise RuntimeError(
            "segment_client: Segment(app) / Segment().init_app(app) was not called for this app"
        )
    return state


def current_client(app: Flask | None = None) -> Client:
    """The current app's client (built on first use in this process). Thread-safe."""
    if app is None:
        if not has_app_context():
            raise RuntimeError("segment_client: current_client() needs an app context or app=")
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    return _app_state(app).client.get()


class Segment:
    """The Flask extension. `Segment(app)` or `Segment()` then `init_app(app)` per app.

    `client` (optional) overrides the config: a factory returning the app's Client.
    """

    def __init__(
        self, app: Flask | None = None, *, client: Callable[[], Client] | None = None
    ) -> None:
        self._factory = client
        self._app = app
        if app is not None:
            self.init_app(app)

    @property
    def client(self) -> Client:
        """The client of the current app (or of the app given to the constructor)."""
        return current_client(None if has_app_context() else self._app)

    def init_app(self, app: Flask) -> None:
        """Register the request hooks and read `SEGMENT_*` config for `app`."""
        config = app.config
        factory = self._factory or config.get("SEGMENT_CLIENT")
        if factory is not None and not callable(factory):
            raise ConfigurationError(
                f"SEGMENT_CLIENT must be a function returning a Client, got {factory!r}"
            )
        if factory is None:
            options = config.get("SEGMENT_OPTIONS") or {}
            if not isinstance(options, Mapping):
                raise ConfigurationError(f"SEGMENT_OPTIONS must be a dict, got {options!r}")
            write_key, host = config.get("SEGMENT_WRITE_KEY"), config.get("SEGMENT_HOST")
            check_client_options(write_key, host, options, "SEGMENT_OPTIONS")

            def factory() -> Client:
                return Client(write_key, host=host, **options)

        web = WebSettings.build(
            trusted_proxies=config.get("SEGMENT_TRUSTED_PROXIES"),
            identify=config.get("SEGMENT_IDENTIFY"),
            identify_interval=config.get("SEGMENT_IDENTIFY_INTERVAL"),
            request_id_headers=config.get("SEGMENT_REQUEST_ID_HEADERS"),
            capture_ip=config.get("SEGMENT_CAPTURE_IP", True),
            anonymous_id_cookie=config.get("SEGMENT_ANONYMOUS_ID_COOKIE", "ajs_anonymous_id"),
            user_id_cookie=config.get("SEGMENT_USER_ID_COOKIE", "ajs_user_id"),
            name=lambda key: f"SEGMENT_{key.upper()}",
        )
        # Flask's cookie session only works with a secret key; without one the
        # identify-once marker stays in process memory.
        app.extensions[EXTENSION] = _AppState(
            _checked(factory), web, use_session=bool(app.secret_key)
        )
        app.before_request(_before_request)
        app.teardown_request(_teardown_request)


def _checked(factory: Callable[[], Any]) -> Callable[[], Client]:
    def build() -> Client:
        client = factory()
        if not isinstance(client, Client):
            raise ConfigurationError(f"SEGMENT_CLIENT must return a Client, got {client!r}")
        return client

    return build


def _facts() -> RequestFacts:
    return RequestFacts(
        scheme=request.scheme,
        host=request.host,
        path=request.path,
        query=request.query_string.decode("latin-1"),
        remote_addr=request.remote_addr,
        header=request.headers.get,
        cookies=request.cookies,
    )


def _before_request() -> None:
    state = _app_state(current_app._get_current_object())  # type: ignore[attr-defined]
    scope = RequestScope()
    scope.begin(_facts, state.web)
    g._segment_scope = scope
    if state.web.identify is not None:
        scope.set_user(
            identify_user(
                state.client.get,
                state.web,
                request._get_current_object(),  # type: ignore[attr-defined]
                session if state.use_session else None,
            )
        )


def _teardown_request(exc: BaseException | None) -> None:
    scope = g.pop("_segment_scope", None)
    if isinstance(scope, RequestScope):
        scope.end()
