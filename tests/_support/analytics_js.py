"""The real analytics.js (npm `@segment/analytics-next`) for browser tests, and the
official Node library (`@segment/analytics-node`) for the interop tests.

`install()` runs `npm ci` on tests/_support/js/package.json and its lock file into a
cache directory outside the working tree (keyed by the lock file's hash, so a changed
lock installs anew), once per machine; concurrent test runs wait for one install.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

JS_DIR = Path(__file__).resolve().parent / "js"
PACKAGE = "@segment/analytics-next"
NODE_PACKAGE = "@segment/analytics-node"


def _complete(modules: Path) -> bool:
    return ((modules / PACKAGE / "dist" / "umd" / "standalone.js").is_file()
            and (modules / NODE_PACKAGE / "package.json").is_file())


def cache_root() -> Path:
    configured = os.environ.get("SEGMENT_CLIENT_JS_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "segment-client-tests"


def install() -> Path:
    """The `node_modules` directory holding the locked packages; installs them once.

    Raises RuntimeError (with npm's output) when npm is missing or the install fails.
    """
    lock = (JS_DIR / "package-lock.json").read_bytes()
    key = hashlib.sha256(lock + (JS_DIR / "package.json").read_bytes()).hexdigest()[:16]
    root = cache_root()
    target = root / f"js-{key}"
    modules = target / "node_modules"
    if _complete(modules):
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "npm not found: the browser identity tests install @segment/analytics-next with "
            "npm ci (apt-get install nodejs npm; .ci/run does this)"
        )
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"js-{key}.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # another run may be installing the same lock
        if _complete(modules):
            return modules
        work = Path(tempfile.mkdtemp(prefix="js-", dir=root))
        shutil.copy(JS_DIR / "package.json", work)
        shutil.copy(JS_DIR / "package-lock.json", work)
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=work, capture_output=True, text=True, timeout=600, check=False,
        )
        if done.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            raise RuntimeError(f"npm ci failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)  # whole or not at all: a killed install leaves no half tree
    return modules
