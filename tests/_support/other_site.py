"""A one-page web site on a loopback port: "another origin" for browser tests.

`OtherSite()` serves `html` at every path on 127.0.0.1 (a free port) until closed; its
`origin` is what the browser sends as `Origin`. Thread-safe; serves on a daemon thread
(a `LocalServer`).
"""

from __future__ import annotations

from types import TracebackType

from tests._support.localhttp import LocalServer, Request, Response

PAGE = "<!doctype html><title>another site</title><p>hello</p>"


class OtherSite:
    """Serves one HTML page on 127.0.0.1 (context manager)."""

    def __init__(self, html: str = PAGE) -> None:
        page = Response(200, html.encode(), {"Content-Type": "text/html; charset=utf-8"})

        def handle(request: Request) -> Response:
            return page

        self._server = LocalServer(handle)
        self.origin = self._server.url

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> OtherSite:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
