#!/usr/bin/env bash
# The main job: installs the package into .venv, starts the bundled local collector,
# sends real events through a real Client and shows what arrived.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q -e '.[fast]'
exec .venv/bin/segment-client demo "$@"
