#!/usr/bin/env bash
# Installs the development tools and runs the whole suite: ruff, mypy --strict, the docs
# site's strict build and pytest under the main Python (.venv), then pytest under every
# other Python the package supports (.venv-3.10, ...), each in its own virtualenv, with
# the interpreters of `pyenv root`. This is the README's test command; .ci/run runs
# exactly this. Arguments go to every pytest run.
#
# SEGMENT_TEST_PYTHONS="3.12" narrows the other Pythons (empty: the main one only).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# `pip install --group` (PEP 735 dependency groups) needs pip >= 25.1.
PIP_MIN="pip>=25.1"

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "$PIP_MIN"
.venv/bin/python -m pip install -q --group dev -e '.[fast,oauth,otel]'
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
main_version=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
echo "== pytest under Python $main_version (.venv): the whole suite"
.venv/bin/python -m pytest "$@"

# The other supported Pythons run everything but the framework, browser (Chromium, the
# npm-installed analytics.js), docs and example tests: those stay with the main Python,
# as does uWSGI, which compiles at install (minutes per version).
EXCLUDED=(
    --ignore=tests/integrations
    --ignore=tests/browser
    --ignore=tests/identity/test_analytics_js.py
    --ignore=tests/identity/test_routes.py
    --ignore=tests/test_docs.py
    --ignore=tests/test_examples.py
    --ignore=tests/test_readme.py
    --deselect=tests/test_concurrency_models.py::test_real_uwsgi_worker_without_threads
)
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for version in ${SEGMENT_TEST_PYTHONS-3.10 3.12 3.13}; do
    [ "$version" = "$main_version" ] && continue
    # The newest patch release of that version the image has, e.g. versions/3.12.1.
    interpreter=""
    for candidate in "$pyenv_root"/versions/"$version".*/bin/python; do
        if [ -x "$candidate" ]; then interpreter=$candidate; fi
    done
    if [ -z "$interpreter" ]; then
        echo "scripts/test.sh: no Python $version under $pyenv_root/versions;" \
            "the package declares it supported, so it must be tested" >&2
        exit 1
    fi
    venv=".venv-$version"
    if [ ! -x "$venv/bin/python" ]; then
        "$interpreter" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install -q --upgrade "$PIP_MIN"
    # lint too: the typegen tests check generated code with mypy and ruff.
    "$venv/bin/python" -m pip install -q --group test --group lint -e '.[fast,oauth,otel]'
    echo "== pytest under Python $version ($venv): all but the framework and browser tests"
    "$venv/bin/python" -m pytest "${EXCLUDED[@]}" "$@"
done
