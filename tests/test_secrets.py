"""Write keys, OAuth tokens, assertions and private keys never show in logs, reprs or errors.

Each failure path runs with every logger at DEBUG (urllib3 and requests included) and
`on_error` collecting errors; then every captured text is searched for every secret.
"""

from __future__ import annotations

import base64
import logging
import socket
from typing import Any

import pytest

from segment_client import Client, DeliveryError, OAuthSettings
from segment_client.collector import Collector, Fault
from tests._support.localhttp import LocalServer, Request, Response
from tests.test_oauth import TokenServer, make_key

WRITE_KEY = "wk-SUPER-SECRET-7f3a"
BASIC = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def echo(request: Request) -> Response:
    """A hostile collector: it answers with everything it received, credentials too."""
    text = f"{request.headers!r} {request.json()!r}"
    return Response(401, text.encode())


def _texts(client: Client, errors: list[DeliveryError], caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text, repr(client), str(client), repr(client._consumer.sender.transport)]
    for error in errors:
        parts += [str(error), repr(error), repr(error.args)]
        parts += [str(getattr(error, "body", ""))]
    return "\n".join(parts)


def _assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret leaked: {secret[:6]}..."


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("path", ["echo_401", "refused_connection", "retry_then_fail"])
def test_write_key_never_leaks(path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[DeliveryError] = []
    server: LocalServer | Collector
    if path == "echo_401":
        server = LocalServer(echo)
    else:
        server = Collector(faults=[Fault(status=500, count=1), Fault(status=503, count=1)])
        server.start()
    host = server.url
    if path == "refused_connection":
        server.close()
        host = f"http://127.0.0.1:{_free_port()}"
    try:
        client = Client(
            WRITE_KEY, host=host, max_retries=1 if path == "retry_then_fail" else 0,
            retry_base_delay=0.01, on_error=lambda e, m: errors.append(e),
        )
        client.track("u", "E")
        delivered = client.close_and_flush(10)
    finally:
        if path != "refused_connection":
            server.close()
    assert delivered is False and len(errors) == 1
    if path == "echo_401":
        # The server did echo the credentials: redaction, not luck, keeps them out.
        assert "***" in str(errors[0])
    _assert_clean(_texts(client, errors, caplog), [WRITE_KEY, BASIC])


def test_oauth_secrets_never_leak(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pem, public = make_key()
    tokens = TokenServer(public)
    errors: list[DeliveryError] = []
    with LocalServer(tokens) as auth, LocalServer(echo) as api:
        tokens.audience = auth.url
        oauth = OAuthSettings("client-1", "key-1", pem, auth_server=auth.url)
        client = Client(
            WRITE_KEY, host=api.url, oauth=oauth, max_retries=0,
            on_error=lambda e, m: errors.append(e),
        )
        client.track("u", "E")  # the API echoes the bearer token back in a 401, twice
        assert client.flush(10) is False
        # And a refusal from the token endpoint that echoes the assertion it got.
        def echo_assertion(request: Request) -> Response:
            return Response(401, request.body)

        auth_echo = LocalServer(echo_assertion)
        try:
            client._consumer.sender.transport.auth.tokens.url = auth_echo.url + "/token"  # type: ignore[attr-defined]
            client._consumer.sender.transport.auth.tokens._token = None  # type: ignore[attr-defined]
            client.track("u", "F")
            assert client.flush(10) is False
        finally:
            auth_echo.close()
        client.close_and_flush(5)
        assertion = auth_echo.requests[0].body.decode().split("client_assertion=")[1]
        assertion = assertion.split("&")[0]
    assert tokens.issued == ["tok-1", "tok-2"] and len(errors) == 2
    assert all("***" in str(error) for error in errors)  # the echoes were redacted
    key_body = "".join(pem.strip().splitlines()[1:-1])
    secrets: list[Any] = [WRITE_KEY, BASIC, "tok-1", "tok-2", assertion, key_body[:40]]
    manager = client._consumer.sender.transport.auth.tokens  # type: ignore[attr-defined]
    text = _texts(client, errors, caplog) + repr(oauth) + repr(manager)
    _assert_clean(text, secrets)
