"""Settings of the example site: the Segment app, its middleware and the SEGMENT dict."""

import os

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "example_site.urls"
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.sessions",
    "segment_client.integrations.django.SegmentConfig",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After the middleware that sets up what IDENTIFY reads (sessions, auth).
    "segment_client.integrations.django.SegmentMiddleware",
]
# Cookie sessions keep the example free of a database.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
DATABASES: dict[str, dict[str, str]] = {}

SEGMENT = {
    "WRITE_KEY": os.environ.get("SEGMENT_WRITE_KEY", "example-write-key"),
    # The library's local collector by default, so running the example sends nothing
    # to Segment; point it at https://api.segment.io (or the EU host) for real.
    "HOST": os.environ.get("SEGMENT_HOST", "http://127.0.0.1:8787"),
    "OPTIONS": {"flush_interval": 1.0},
    "IDENTIFY": "example_site.views.identify_user",
    "TRUSTED_PROXIES": 1,  # one load balancer in front, appending to X-Forwarded-For
}
