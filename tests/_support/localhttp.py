"""Small HTTP servers on 127.0.0.1 for what the library's collector cannot do.

Tests use `segment_client.collector.Collector` wherever it serves. These cover the rest:
`LocalServer` runs a handler function on a ThreadingHTTPServer in a daemon thread (TLS,
token endpoints, servers that echo what they got); `ScriptedAPI` is a handler that
accepts Tracking API batches with a gate that holds answers until a test releases it and
a bearer-token check; `forward_proxy` is a plain HTTP forward proxy that records what
went through it.
"""

from __future__ import annotations

import gzip
import http.client
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        body = self.body
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return json.loads(body)


@dataclass
class Response:
    status: int = 200
    body: bytes = b'{"success": true}'
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


class LocalServer:
    """An HTTP server on an ephemeral loopback port; a context manager that stops it."""

    def __init__(self, handle: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command, self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with lock:
                    outer.requests.append(request)
                try:
                    response = handle(request)
                except Exception as exc:  # a broken test handler answers 500, visibly
                    response = Response(500, repr(exc).encode())
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="test-local-http",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ScriptedAPI:
    """A Tracking API stand-in: records delivered messages, scripted statuses first.

    `script` is a list of statuses (or Responses) answered in turn before answering 200;
    `gate`, when given, makes every request wait until it is set; `authorize` may refuse
    a request (return a Response) based on its headers.
    """

    def __init__(
        self,
        script: list[int | Response] | None = None,
        *,
        gate: threading.Event | None = None,
        authorize: Callable[[Request], Response | None] | None = None,
    ) -> None:
        self.script = list(script or [])
        self.gate = gate
        self.authorize = authorize
        self.messages: list[dict[str, Any]] = []
        self.attempts = 0
        self._cond = threading.Condition()

    def __call__(self, request: Request) -> Response:
        if self.gate is not None:
            self.gate.wait(30)
        with self._cond:
            self.attempts += 1
            if self.authorize is not None:
                refusal = self.authorize(request)
                if refusal is not None:
                    return refusal
            if self.script:
                step = self.script.pop(0)
                return step if isinstance(step, Response) else Response(step, b"{}")
            self.messages.extend(request.json()["batch"])
            self._cond.notify_all()
        return Response()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= count, timeout)


def forward_proxy() -> tuple[LocalServer, list[str]]:
    """A plain-HTTP forward proxy; returns the server and the list of URLs it relayed."""
    relayed: list[str] = []

    def relay(request: Request) -> Response:
        target = urlsplit(request.path)  # absolute-form: the request went via a proxy
        if not target.hostname:
            return Response(400, b"not a proxy request")
        relayed.append(request.path)
        conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
        try:
            headers = {
                k: v for k, v in request.headers.items()
                if k not in ("proxy-connection", "connection", "host")
            }
            conn.request(request.method, target.path or "/", body=request.body, headers=headers)
            answer = conn.getresponse()
            return Response(answer.status, answer.read(), {"X-Relayed": "1"})
        finally:
            conn.close()

    return LocalServer(relay), relayed
