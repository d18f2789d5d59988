"""Process targets for tests/interop/test_processes.py (importable, for "spawn")."""

from __future__ import annotations

import os

from segment_client import Client


def send_and_close(url: str, worker: int, count: int) -> None:
    """A worker with its own client: `count` tracks, then a bounded close; the exit code
    says whether everything was delivered."""
    client = Client("key", host=url, flush_at=50, flush_interval=60)
    for i in range(count):
        client.track(f"worker-{worker}", "Job Done", {"i": i})
    os._exit(0 if client.close_and_flush(30) else 3)


def send_with_inherited(client: Client, worker: int, count: int) -> None:
    """A forked worker using the client its parent made (no close: atexit drains it)."""
    for i in range(count):
        client.track(f"worker-{worker}", "Job Done", {"i": i})
    if not client.flush(30):
        os._exit(3)
