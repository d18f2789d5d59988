"""Every plain script in examples/ runs to success against a stub collector on 127.0.0.1.

Framework example apps live in subdirectories and are tested by their own tests
(examples/testing/ by tests/test_testing_plugin.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._support.stub_collector import StubCollector

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Framework example apps: run through their framework's test client by tests/integrations.
FRAMEWORK_APPS = {"celery_worker.py", "fastapi_app.py", "flask_app.py", "lambda_handler.py"}
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if p.name not in FRAMEWORK_APPS)

#: The message types each example is expected to deliver, in order (others: exit 0).
EXPECTED_TYPES = {"basic.py": ["identify", "track", "page"]}

# Runs a script as __main__ with name resolution limited to the loopback interface, so
# an example can never reach the real Segment API whatever it configures.
_BOOTSTRAP = """
import runpy, socket, sys
_real = socket.getaddrinfo
def _local_only(host, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise OSError(f"examples tests reach only 127.0.0.1, not {host!r}")
    return _real(host, *args, **kwargs)
socket.getaddrinfo = _local_only
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(name="collector")
def _collector() -> Iterator[StubCollector]:
    stub = StubCollector(write_key="example-write-key").start()
    yield stub
    stub.stop()


def test_there_are_examples() -> None:
    """The glob finds the scripts (a moved directory would silently test nothing)."""
    assert "basic.py" in [path.name for path in SCRIPTS]
    assert set(EXPECTED_TYPES) <= {path.name for path in SCRIPTS}


def test_framework_apps_are_tested_elsewhere() -> None:
    """Each example app left out here is loaded by a test under tests/integrations."""
    tests = "".join(
        path.read_text() for path in (EXAMPLES.parent / "tests" / "integrations").glob("*.py")
    )
    for name in sorted(FRAMEWORK_APPS | {"django_project"}):
        assert Path(name).stem in tests, f"no test under tests/integrations runs {name}"
        assert (EXAMPLES / name).exists(), name


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_example_runs(script: Path, collector: StubCollector) -> None:
    """The script exits 0, delivers to the stub with the key from the environment."""
    env = {
        **os.environ,
        "SEGMENT_WRITE_KEY": "example-write-key",
        "SEGMENT_HOST": collector.url,
    }
    result = subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP, str(script)],
        env=env, cwd=EXAMPLES, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert collector.rejections() == []  # any other write key would be refused
    if script.name in EXPECTED_TYPES:
        assert [m["type"] for m in collector.snapshot()] == EXPECTED_TYPES[script.name]
        assert "delivered: 3" in result.stdout
