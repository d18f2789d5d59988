"""ASGI (FastAPI, Starlette, any ASGI app): pure ASGI middleware, no framework import.

```python
from fastapi import FastAPI
from segment_client.integrations.asgi import SegmentMiddleware, current_client

app = FastAPI()
app.add_middleware(SegmentMiddleware, client=lambda: Client("WRITE_KEY"))

@app.post("/signup")
async def signup():
    current_client().track(event="Signed Up")  # ids and context come from the request
```

Every message sent while an HTTP request is handled (in the request's task and in the
threads it runs sync endpoints in) gets its context (ip, userAgent, page, locale,
requestId) and the ids of analytics.js cookies, unless the call gives them. The client
is built on first use in each process and, when the server runs the lifespan protocol,
closed (with a bounded flush) at shutdown, before the server is told shutdown is
complete. Identify functions get the ASGI scope and may be sync or async.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from segment_client import Client, ConfigurationError

from ._common import LazyClient, check_bool, check_seconds, logger
from ._web import (
    RequestFacts,
    RequestScope,
    WebSettings,
    call_identify,
    check_identity,
    parse_cookie_header,
    send_identify,
)

__all__ = ["SegmentMiddleware", "current_client"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_current: LazyClient | None = None


def current_client() -> Client:
    """The client of the most recently built `SegmentMiddleware` in this process."""
    if _current is None:
        raise RuntimeError("segment_client: no SegmentMiddleware has been set up")
    return _current.get()


def _facts(scope: Scope, settings: WebSettings) -> RequestFacts:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        # Repeated headers fold into one, as HTTP allows (X-Forwarded-For hops).
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    host = headers.get("host")
    server = scope.get("server")
    if not host and server:
        host = f"{server[0]}:{server[1]}" if server[1] is not None else str(server[0])
    client = scope.get("client")
    raw_path = scope.get("raw_path")
    path = (
        raw_path.decode("latin-1").partition("?")[0]
        if raw_path
        else scope.get("root_path", "") + scope.get("path", "")
    )
    cookie_header = headers.get("cookie")
    cookies = parse_cookie_header(
        cookie_header, (settings.anonymous_id_cookie, settings.user_id_cookie)
    )
    return RequestFacts(
        scheme=scope.get("scheme", "http"),
        host=host or "",
        path=path,
        query=(scope.get("query_string") or b"").decode("latin-1"),
        remote_addr=client[0] if client else None,
        header=headers.get,
        cookies=cookies,
    )


class SegmentMiddleware:
    """Pure ASGI middleware setting the request context; closes the client at shutdown.

    Args:
        app: the wrapped ASGI app.
        client: a Client, or a function building one (called on first use in each
            process). Default: `Client()` from `$SEGMENT_WRITE_KEY` / `$SEGMENT_HOST`.
        close_on_shutdown: close the client at lifespan shutdown (a client built here
            is built again if the app starts again).
        shutdown_timeout: the bound on that close, in seconds.
        identify, identify_interval, trusted_proxies, request_id_headers, capture_ip,
            anonymous_id_cookie, user_id_cookie: see the web integrations' settings;
            `identify(scope)` may be a coroutine function.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        client: Client | Callable[[], Client] | None = None,
        close_on_shutdown: bool = True,
        shutdown_timeout: float = 5.0,
        identify: Callable[[Scope], Any] | None = None,
        identify_interval: float | None = None,
        trusted_proxies: int | list[str] | str | None = None,
        request_id_headers: list[str] | None = None,
        capture_ip: bool = True,
        anonymous_id_cookie: str = "ajs_anonymous_id",
        user_id_cookie: str = "ajs_user_id",
    ) -> None:
        global _current
        if client is not None and not isinstance(client, Client) and not callable(client):
            raise ConfigurationError(
                f"client must be a Client or a function returning one, got {client!r}"
            )
        check_bool("close_on_shutdown", close_on_shutdown)
        check_seconds("shutdown_timeout", shutdown_timeout)
        self.app = app
        self.web = WebSettings.build(
            trusted_proxies=trusted_proxies,
            identify=identify,
            identify_interval=identify_interval,
            request_id_headers=request_id_headers,
            capture_ip=capture_ip,
            anonymous_id_cookie=anonymous_id_cookie,
            user_id_cookie=user_id_cookie,
        )
        self.close_on_shutdown = close_on_shutdown
        self.shutdown_timeout = shutdown_timeout
        given = client

        def build() -> Client:
            if isinstance(given, Client):
                return given
            built = given() if given is not None else Client()
            if not isinstance(built, Client):
                raise ConfigurationError(f"client() must return a Client, got {built!r}")
            return built

        self._client = LazyClient(build)
        _current = self._client

    @property
    def client(self) -> Client:
        """This process's client (built on first use)."""
        return self._client.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan" and self.close_on_shutdown:
            await self.app(scope, receive, self._lifespan_send(send))
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_scope = RequestScope()
        request_scope.begin(lambda: _facts(scope, self.web), self.web)
        try:
            if self.web.identify is not None:
                request_scope.set_user(await self._identify(scope))
            await self.app(scope, receive, send)
        finally:
            request_scope.end()

    async def _identify(self, scope: Scope) -> str | None:
        result = call_identify(self.web, scope)
        if inspect.isawaitable(result):
            try:
                result = await result
            except Exception:  # noqa: BLE001 - never raise into the host application
                logger.exception("the identify function raised")
                return None
        identity = check_identity(result)
        if identity is None:
            return None
        session = scope.get("session")
        send_identify(
            self._client.get,
            self.web,
            identity,
            session if isinstance(session, MutableMapping) else None,
        )
        return identity[0]

    def _lifespan_send(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete" and self._client.built:
                # Before telling the server we are done: it may exit right after. Blocking
                # the loop here is harmless (no requests are served any more) and keeps
                # this middleware free of any one event-loop library.
                try:
                    self._client.close(self.shutdown_timeout)
                except Exception:  # noqa: BLE001 - never raise into the host application
                    logger.exception("closing the client at shutdown failed")
            await send(message)

        return wrapped
