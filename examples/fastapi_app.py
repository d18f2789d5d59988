"""Example FastAPI app with the pure ASGI middleware: `uvicorn fastapi_app:app`.

Set SEGMENT_WRITE_KEY (and SEGMENT_HOST, default: the local collector) first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from segment_client import Client
from segment_client.integrations.asgi import SegmentMiddleware, current_client


def identify_user(scope: MutableMapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """Who is logged in. A real app reads its auth here (scope["user"] with Starlette's
    AuthenticationMiddleware, a session, a verified token); the demo trusts a header."""
    for name, value in scope.get("headers") or ():
        if name == b"x-demo-user":
            return value.decode(), {"plan": "pro"}
    return None


def default_client() -> Client:
    return Client(
        os.environ.get("SEGMENT_WRITE_KEY", "example-write-key"),
        host=os.environ.get("SEGMENT_HOST", "http://127.0.0.1:8787"),
    )


def create_app(client: Callable[[], Client] = default_client) -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        SegmentMiddleware,
        client=client,
        identify=identify_user,
        trusted_proxies=1,
    )

    @app.get("/signup")
    async def signup() -> dict[str, str]:
        # No ids here: the logged-in user, or analytics.js's cookies, fill them in.
        return {"messageId": current_client().track(event="Signed Up")}

    @app.get("/sync-signup")
    def sync_signup() -> dict[str, str]:
        # A sync endpoint runs in a worker thread: the request context follows it.
        return {"messageId": current_client().track(event="Signed Up (sync)")}

    return app


app = create_app()
