"""`segment-client collector` in a child process, for the interop tests.

`CliCollector(args)` starts `python -m segment_client collector --port 0 --db :memory:
--quiet ARGS` with the segment_client this test imports, waits for its "listening on"
line and reads it back over HTTP (stats, events, rejections). Not thread-safe; a context
manager that terminates the child (and kills it if SIGTERM is ignored for 10 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

import segment_client

# Children import the same segment_client as the test that starts them.
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(segment_client.__file__).resolve().parents[1]),
     os.environ.get("PYTHONPATH", "")])}


class CliCollector:
    """A running `segment-client collector` child; `url` is where it listens."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "segment_client", "collector", "--port", "0", "--db",
             ":memory:", "--quiet", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CHILD_ENV,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on http://" not in line:
            self.close()
            raise RuntimeError(f"collector did not start: {line!r}")
        self.url = line.split("listening on ")[1].split()[0].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])

    def get(self, route: str, **params: Any) -> Any:
        answer = requests.get(f"{self.url}/v1/{route}", params=params, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def stats(self) -> dict[str, Any]:
        return dict(self.get("stats"))

    def events(self) -> list[dict[str, Any]]:
        """Every stored record, oldest first."""
        return list(reversed(self.get("events", limit=10000)["events"]))

    def rejections(self) -> list[dict[str, Any]]:
        return list(self.get("rejections")["rejections"])

    def set_faults(self, *faults: dict[str, Any], seed: int | None = None) -> None:
        """Replace the fault rules through the control route."""
        answer = requests.post(f"{self.url}/v1/faults", json={"faults": list(faults),
                               "seed": seed}, timeout=10)
        answer.raise_for_status()

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> CliCollector:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
