"""Browser and server in one local workspace: analytics.js in the page, segment-client in
a Flask backend, both sending to the local collector, stitched into one profile.

Run it (from the repository root, with `npm install @segment/analytics-next` done there):

    segment-client collector --write-key demo-key --analytics-js-dir ./node_modules \\
        --allow-origin http://127.0.0.1:5000
    flask --app examples/browser_identity/app.py run

Open http://127.0.0.1:5000, click "Log in" and "Buy", then open the collector's Profiles
view (http://127.0.0.1:8787/static/profiles.html): one profile holds the browser's page
views and the server's tracks, linked by the analytics.js cookie the backend reads.
Environment: SEGMENT_COLLECTOR (default http://127.0.0.1:8787), SEGMENT_WRITE_KEY.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request, session

from segment_client.integrations.flask import Segment, current_client

# Segment's standard snippet pointed at the collector (the two changes are explained in
# snippet.js and docs/identity.md); served with this app's collector URL and write key.
SNIPPET_FILE = Path(__file__).with_name("snippet.js")
SNIPPET = "".join(line for line in SNIPPET_FILE.read_text().splitlines(keepends=True)
                  if not line.startswith("//")).strip()
LOCAL_COLLECTOR = "http://127.0.0.1:8787"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<link rel="icon" href="data:,">
<script>SNIPPET</script></head>
<body>
<h1>Shop</h1>
<p id="who">anonymous</p>
<input id="user" value="ada"> <button id="login">Log in</button>
<button id="buy">Buy</button> <button id="logout">Log out</button>
<p id="done"></p>
<script>
function done(text) { document.getElementById("done").textContent = text; }
document.getElementById("login").onclick = function () {
  var user = document.getElementById("user").value;
  analytics.identify(user, {email: user + "@example.com"});
  fetch("/login?user=" + encodeURIComponent(user)).then(function () {
    document.getElementById("who").textContent = user; done("logged in " + user);
  });
};
document.getElementById("buy").onclick = function () {
  analytics.track("Buy Clicked", {sku: "tea"});
  fetch("/api/buy", {method: "POST"}).then(function (r) { return r.json(); })
    .then(function (body) { done("bought " + body.messageId); });
};
document.getElementById("logout").onclick = function () {
  analytics.reset();  // a new anonymousId: the next user starts a new profile
  fetch("/logout").then(function () {
    document.getElementById("who").textContent = "anonymous"; done("logged out");
  });
};
</script>
</body></html>
"""

segment = Segment()


def identify_user(req: Any) -> tuple[str, dict[str, Any]] | None:
    """SEGMENT_IDENTIFY: the logged-in user, kept in Flask's cookie session."""
    user_id = session.get("user_id")
    return (user_id, {"email": f"{user_id}@example.com"}) if user_id else None


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The shop: `config` overrides (SEGMENT_COLLECTOR, SEGMENT_WRITE_KEY, SEGMENT_*)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="example-only-not-secret",
        SEGMENT_COLLECTOR=os.environ.get("SEGMENT_COLLECTOR", LOCAL_COLLECTOR),
        SEGMENT_WRITE_KEY=os.environ.get("SEGMENT_WRITE_KEY", "demo-key"),
        SEGMENT_IDENTIFY=identify_user,
    )
    app.config.update(config or {})
    app.config.setdefault("SEGMENT_HOST", app.config["SEGMENT_COLLECTOR"])
    segment.init_app(app)

    @app.get("/")
    def index() -> Response:
        snippet = SNIPPET.replace(LOCAL_COLLECTOR, app.config["SEGMENT_COLLECTOR"]).replace(
            "YOUR_WRITE_KEY", app.config["SEGMENT_WRITE_KEY"])
        return Response(PAGE.replace("SNIPPET", snippet), mimetype="text/html")

    @app.get("/login")
    def login() -> Any:
        session["user_id"] = request.args["user"]
        return jsonify(ok=True)

    @app.get("/logout")
    def logout() -> Any:
        session.clear()
        return jsonify(ok=True)

    @app.post("/api/buy")
    def buy() -> Any:
        # No ids here: the integration takes the user from SEGMENT_IDENTIFY and the
        # anonymousId from the browser's ajs_anonymous_id cookie.
        message_id = current_client().track(event="Order Completed",
                                            properties={"sku": "tea", "revenue": 4.5})
        return jsonify(messageId=message_id)

    return app


app = create_app()
