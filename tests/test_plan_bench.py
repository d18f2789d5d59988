"""A tiny run of bench/plan_cost.py so the plan benchmark cannot rot (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("extra", [["--interpreter"], ["--floor"], ["--profile", "simple"]])
def test_plan_cost_runs(tmp_path: Path, extra: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "plan_cost.py"), "--rounds", "1",
         "--number", "20", *extra],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if extra == ["--interpreter"]:
        assert "rich event: validation adds" in proc.stdout
        assert "rich event: validation (interpreter) adds" in proc.stdout
    elif extra == ["--floor"]:
        assert "hand-written (lower bound)" in proc.stdout
        assert "rich event: validation (always valid) adds" in proc.stdout
    else:
        assert "<tracking plan validator>" in proc.stdout
