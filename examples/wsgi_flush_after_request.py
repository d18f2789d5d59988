"""Flush after every WSGI response, for uWSGI workers without threads (docs/deploying.md).

Run as a script, it sends one request through the wrapped application in this process
and checks that the message was delivered by the time the response ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from segment_client import Client

# The write key and host come from SEGMENT_WRITE_KEY / SEGMENT_HOST. A long interval, so
# that in this demonstration only the wrapper's flush can have sent the message.
client = Client(flush_interval=60)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    client.track("user-1", "Page Served", {"path": environ["PATH_INFO"]})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


# --8<-- [start:wrapper]
class FlushAfterRequest:
    """Flush after the response is sent (needed only without enable-threads)."""

    def __init__(self, app: WSGIApp, client: Client, timeout: float = 2.0) -> None:
        self.app, self.client, self.timeout = app, client, timeout

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        body = self.app(environ, start_response)
        try:
            yield from body
        finally:
            if hasattr(body, "close"):
                body.close()
            self.client.flush(self.timeout)


application = FlushAfterRequest(app, client)  # the callable uWSGI serves
# --8<-- [end:wrapper]


if __name__ == "__main__":
    from wsgiref.util import setup_testing_defaults

    environ: dict[str, Any] = {"PATH_INFO": "/pricing"}
    setup_testing_defaults(environ)
    body = b"".join(application(environ, lambda status, headers: None))
    delivered = client.stats().delivered
    print(f"response {body!r}, delivered: {delivered}")
    assert delivered == 1, "the wrapper did not flush"
    assert client.close_and_flush(5)
