"""`import segment_client` stays cheap: heavy dependencies load where they are first used.

The pytest plugin is loaded by every pytest run of every project that installs the
package, and loading it runs `segment_client/__init__.py`; so these modules must not be
imported by the package itself. Each check runs in a fresh interpreter: in this test
process `requests` and friends are long imported by other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Third-party (and the heavy stdlib modules requests drags in) that the package imports
# only when it first needs them.
HEAVY = ("asyncio", "backoff", "dateutil", "http.client", "requests", "urllib3")
# What the plugin must not load before a test uses its fixture.
PLUGIN_DEFERRED = ("segment_client.collector", "segment_client.testing")

_REPORT = (
    "import json, sys; print(json.dumps(sorted(m for m in {names!r} if m in sys.modules)))"
)


def _loaded_after(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of `names` are in sys.modules after running `code` in a new interpreter."""
    script = f"{code}\n{_REPORT.format(names=names)}"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_import_segment_client_loads_no_heavy_dependency() -> None:
    assert _loaded_after("import segment_client", HEAVY) == []


def test_importing_the_plugin_loads_no_heavy_dependency_nor_the_recorder() -> None:
    names = HEAVY + PLUGIN_DEFERRED
    assert _loaded_after("import segment_client.pytest_plugin", names) == []


def test_creating_a_client_and_tracking_imports_no_http_stack() -> None:
    """Nothing is sent yet (send=False): requests is still not needed."""
    code = (
        "import segment_client\n"
        "c = segment_client.Client('k', send=False)\n"
        "c.track('user-1', 'Signed Up')\n"
        "assert c.close_and_flush(5)\n"
    )
    assert _loaded_after(code, HEAVY) == []


def test_each_dependency_loads_on_first_use_and_works() -> None:
    """From a cold interpreter: a string timestamp parses (dateutil), a wait schedule is
    made (backoff), and an attempt against a closed port is classified in plain words
    (requests, http.client): the lazy paths are the only paths there."""
    code = (
        "import socket\n"
        "from segment_client import HTTPTransport, RetryPolicy, TransportError\n"
        "from segment_client._messages import _timestamp\n"
        "assert _timestamp('2024-05-01 12:00:00+02:00') == '2024-05-01T10:00:00.000Z'\n"
        "waits = RetryPolicy(base_delay=0.5, max_delay=60.0).backoff_waits()\n"
        "assert 0.0 <= next(waits) <= 0.5\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
        "t = HTTPTransport('k', url=f'http://127.0.0.1:{port}/v1/batch', timeout=5)\n"
        "try:\n"
        "    t.send([b'{}'])\n"
        "except TransportError as exc:\n"
        "    assert str(exc) == f'connection refused to 127.0.0.1:{port}', str(exc)\n"
        "else:\n"
        "    raise AssertionError('sent to a closed port')\n"
        "finally:\n"
        "    t.close()\n"
    )
    assert _loaded_after(code, HEAVY) == [
        "asyncio", "backoff", "dateutil", "http.client", "requests", "urllib3"
    ]


def test_a_pytest_session_with_the_plugin_loads_no_heavy_dependency(tmp_path: Path) -> None:
    """At configure time the plugin installs its network guard: still nothing heavy. The
    other plugins installed here are disabled (anyio's imports asyncio)."""
    names = HEAVY + PLUGIN_DEFERRED
    (tmp_path / "test_inner.py").write_text(
        "import json, sys\n\n"
        "def test_modules():\n"
        f"    print('LOADED', json.dumps(sorted(m for m in {names!r} if m in sys.modules)))\n"
        "    assert 'segment_client.pytest_plugin' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "-p", "no:anyio", "-p", "no:timeout", "-p", "no:platformdirs", "test_inner.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED "))
    assert json.loads(line.removeprefix("LOADED ")) == []
