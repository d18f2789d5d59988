"""Browser fixtures: Debian's Chromium driven by Playwright, a collector per test.

Playwright's own browser downloads are not used (CI is offline): the tests drive the
OS package `/usr/bin/chromium` (override with SEGMENT_CLIENT_CHROMIUM). A missing
browser fails the tests, it never skips them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    expect,
    sync_playwright,
)

from segment_client import Client
from segment_client.collector import Collector, Validator

REBOUND_HOST = "rebound.example"
CHROMIUM = os.environ.get("SEGMENT_CLIENT_CHROMIUM", "/usr/bin/chromium")
# The flags a root, offline, GPU-less machine needs; no background calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A name an attacker's DNS would answer with 127.0.0.1 (DNS rebinding), for the
    # security tests; nothing else resolves it.
    f"--host-resolver-rules=MAP {REBOUND_HOST} 127.0.0.1",
]
WRITE_KEY = "debugger-test-key"
# Generous: the page polls once a second and CI machines are shared.
expect.set_options(timeout=10_000)


@pytest.fixture(scope="package")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """One headless Chromium with a fresh profile for the whole session."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium) or set "
            "SEGMENT_CLIENT_CHROMIUM; the browser tests do not skip"
        )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            permissions=["clipboard-read", "clipboard-write"],
        )
        context.set_default_timeout(10_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Iterator[Page]:
    """A new tab; any script error or console error on it fails the test."""
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console error: {message.text}")

    def on_dialog(dialog: Dialog) -> None:
        errors.append(f"dialog opened: {dialog.message}")
        dialog.dismiss()

    tab.on("console", on_console)
    tab.on("dialog", on_dialog)
    yield tab
    tab.close()
    assert not errors, errors


def _no_violations(message: dict[str, Any]) -> list[str]:
    return []


@pytest.fixture
def validator() -> Validator:
    """The collector's tracking-plan hook; a test overrides it to produce violations."""
    return _no_violations


@pytest.fixture
def collector(validator: Validator) -> Iterator[Collector]:
    """A real collector on a free loopback port, in-memory store, requiring a write key."""
    with Collector(write_key=WRITE_KEY, validator=validator) as running:
        yield running


@pytest.fixture
def make_live_client(collector: Collector) -> Iterator[Callable[..., Client]]:
    """Real clients posting to the test's collector over HTTP; closed after the test."""
    clients: list[Client] = []

    def make(**options: Any) -> Client:
        options.setdefault("host", collector.url)
        options.setdefault("max_retries", 0)
        client = Client(WRITE_KEY, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close_and_flush(5)


@pytest.fixture(scope="session")
def docs_img(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests put the screenshots the docs show.

    A temporary directory, so a test run never changes the working tree; with
    SEGMENT_CLIENT_DOCS_SCREENSHOTS=1 the docs' own docs/img, to refresh them.
    """
    if os.environ.get("SEGMENT_CLIENT_DOCS_SCREENSHOTS") == "1":
        path = Path(__file__).resolve().parents[2] / "docs" / "img"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("docs-img")

