"""Finding and serving the analytics-next build, and the settings pointing at us."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segment_client.collector._analytics_js import build_asset, find_build, settings_for


def test_the_locked_package_is_the_one_installed(analytics_next: Path) -> None:
    package = json.loads((analytics_next / "@segment/analytics-next/package.json").read_text())
    lock = json.loads(
        (Path(__file__).parents[1] / "_support/js/package-lock.json").read_text()
    )
    assert package["version"] == lock["packages"]["node_modules/@segment/analytics-next"][
        "version"]


@pytest.mark.parametrize("where", ["", "@segment/analytics-next",
                                   "@segment/analytics-next/dist/umd"])
def test_find_build_from_any_level(analytics_next: Path, where: str) -> None:
    build = find_build(analytics_next / where if where else analytics_next)
    assert build is not None and (build / "standalone.js").is_file()
    assert find_build(analytics_next.parent) == build  # the project directory


def test_find_build_in_the_current_directory(
    analytics_next: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_build() is None
    assert find_build(tmp_path) is None
    monkeypatch.chdir(analytics_next.parent)
    assert find_build() == find_build(analytics_next)


def test_assets(analytics_next: Path) -> None:
    build = find_build(analytics_next)
    assert build is not None
    for path in ("/analytics.js/v1/KEY/analytics.min.js",
                 "/analytics.js/v2/KEY/analytics.min.js"):
        assert build_asset(build, path) == build / "standalone.js"
    chunk = next(build.glob("ajs-destination.bundle.*.js"))
    assert build_asset(build, f"/analytics-next/bundles/{chunk.name}") == chunk
    for path in ("/analytics-next/bundles/../package.json", "/analytics-next/bundles/x.js",
                 "/analytics-next/bundles/..js", "/analytics.js/v1/a/b/analytics.min.js",
                 "/analytics-next/bundles/index.js.gz"):
        assert build_asset(build, path) is None, path


def test_settings_point_back_at_the_collector() -> None:
    settings = settings_for("KEY", "127.0.0.1:8787/v1")
    segment = settings["integrations"]["Segment.io"]
    assert (segment["apiKey"], segment["apiHost"], segment["protocol"]) == (
        "KEY", "127.0.0.1:8787/v1", "http")
    assert settings["metrics"]["sampleRate"] == 0
    assert settings["remotePlugins"] == [] and settings["edgeFunction"] == {}
    assert list(settings["integrations"]) == ["Segment.io"]
