"""Example Flask app using the Segment extension: `flask --app flask_app run`.

Set SEGMENT_WRITE_KEY (and SEGMENT_HOST, default: the local collector) first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify, request, session

from segment_client.integrations.flask import Segment, current_client

segment = Segment()


def identify_user(req: Any) -> tuple[str, dict[str, Any]] | None:
    """SEGMENT_IDENTIFY: the logged-in user (here kept in Flask's cookie session)."""
    user_id = session.get("user_id")
    return (user_id, {"plan": session.get("plan", "free")}) if user_id else None


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="example-only-not-secret",
        SEGMENT_WRITE_KEY=os.environ.get("SEGMENT_WRITE_KEY", "example-write-key"),
        SEGMENT_HOST=os.environ.get("SEGMENT_HOST", "http://127.0.0.1:8787"),
        SEGMENT_IDENTIFY=identify_user,
        SEGMENT_TRUSTED_PROXIES=1,
    )
    app.config.update(config or {})
    segment.init_app(app)

    @app.get("/login")
    def login() -> Any:
        session["user_id"] = request.args["user"]
        session["plan"] = request.args.get("plan", "free")
        return jsonify(ok=True)

    @app.get("/signup")
    def signup() -> Any:
        # No ids here: the logged-in user, or analytics.js's cookies, fill them in.
        message_id = current_client().track(event="Signed Up", properties={"source": "flask"})
        return jsonify(messageId=message_id)

    @app.get("/checkout")
    def checkout() -> Any:
        # A caller's own context fields win over the request's.
        message_id = current_client().track(
            event="Checkout Started", context={"ip": "0.0.0.0", "campaign": {"name": "x"}}
        )
        return jsonify(messageId=message_id)

    return app


if __name__ == "__main__":
    create_app().run()
