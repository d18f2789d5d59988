"""Fixtures for the identity tests: the real analytics.js installed from npm."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._support import analytics_js


@pytest.fixture(scope="session")
def analytics_next() -> Path:
    """`node_modules` with the locked @segment/analytics-next (npm ci, cached)."""
    try:
        return analytics_js.install()
    except RuntimeError as exc:  # a missing npm fails the tests, it never skips them
        pytest.fail(str(exc))
