"""A tiny run of the benchmark (segment-client only) so bench/ cannot rot.

No timing is asserted; the run must deliver exactly what it sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_run_delivers_every_event(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--no-venv",
            "--clients", "segment-client", "--results", str(results),
        ],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(results.read_text())
    assert data["failures"] == []
    runs = data["raw"]["segment-client"]
    for scenario in ("caller", "throughput"):
        (run,) = runs[scenario]
        assert run["delivered"] == run["sent"] > 0
    (throughput,) = runs["throughput"]
    assert throughput["unique"] == throughput["sent"] == data["sizes"]["throughput"]
    (rss,) = runs["rss"]
    assert rss["queued"] == data["sizes"]["rss"]
    assert rss["rss_after"] > 0
    (rawpost,) = data["raw_ceilings"]["rawpost"]
    assert rawpost["delivered"] == rawpost["sent"]
    # The caller runs went through the project's own collector; throughput is measured
    # against bench/sink.py (the collector commits before answering: it is the slower side).
    (caller,) = runs["caller"]
    assert caller["server"] == "collector"
    assert throughput["server"] == "sink"
    assert {row["key"] for row in data["targets"]} == {
        "share", "rss", "plan_rich", "plan_simple", "counts"
    }
