#!/usr/bin/env bash
# Installs the test dependencies into .venv and runs the whole suite: ruff, mypy --strict,
# pytest. This is the README's test command; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff check src tests examples bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
