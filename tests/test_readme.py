"""The README's main-job command runs as written (the test command is what CI runs)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_main_job_command_runs_as_written() -> None:
    """`bash scripts/demo.sh` installs into .venv, sends through a real Client to the
    embedded collector and prints what arrived: everything sent was stored once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENT_")}
    result = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    sent = int(re.search(r"demo: (\d+) messages", out).group(1))  # type: ignore[union-attr]
    assert f"delivered {sent} · failed 0" in out
    assert f"stored {sent} ({sent} unique, 0 duplicates)" in out
    assert "to a local collector at http://127.0.0.1:" in out
