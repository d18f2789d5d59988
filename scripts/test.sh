#!/usr/bin/env bash
# Installs the test dependencies into .venv and runs the whole suite: ruff, mypy --strict,
# the docs site's strict build, pytest. This is the README's test command; .ci/run runs
# exactly this.
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
# The docs build fails on any warning (broken link, anchor or API reference). Not -q:
# with -q mkdocs stops counting warnings and --strict passes whatever happens.
site=$(mktemp -d)
if ! log=$(NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict -d "$site" 2>&1); then
    printf '%s\n' "$log"
    rm -rf "$site"
    exit 1
fi
rm -rf "$site"
.venv/bin/python -m pytest "$@"
