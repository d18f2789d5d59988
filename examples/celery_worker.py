"""Example Celery worker: `celery -A celery_worker worker --loglevel=INFO`.

A web request (Django, Flask, ASGI integrations) that sends `send_welcome_email.delay(...)`
hands its ids and context to the task: the task's messages carry them. Each prefork
worker process builds its own client; each flushes when it shuts down.
Set SEGMENT_WRITE_KEY and CELERY_BROKER_URL first.
"""

from __future__ import annotations

import os

from celery import Celery

from segment_client import Client
from segment_client.integrations.celery import SegmentCelery

app = Celery(
    "celery_worker",
    broker=os.environ.get("CELERY_BROKER_URL", "memory://"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "cache+memory://"),
)


def make_client() -> Client:
    """Called once in each worker process (and in the process that sends tasks)."""
    return Client(
        os.environ.get("SEGMENT_WRITE_KEY", "example-write-key"),
        host=os.environ.get("SEGMENT_HOST", "http://127.0.0.1:8787"),
    )


# `lambda`: looks make_client up at call time, so a test can swap it.
segment = SegmentCelery(app, client=lambda: make_client())


@app.task
def send_welcome_email(user_id: str) -> int:
    # anonymousId and context come from the request that queued the task.
    segment.client.track(user_id, "Welcome Email Sent", {"pid": os.getpid()})
    return os.getpid()
