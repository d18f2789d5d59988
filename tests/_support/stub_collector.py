"""The library's own collector behind the small interface the docs and examples tests use.

`StubCollector(write_key=...)` answers 401 to any other key, so a test that expects one
key sees a wrong one as missing messages (and a rejection).
"""

from __future__ import annotations

from typing import Any

from segment_client.collector import Collector


class StubCollector:
    """Thread-safe. `start()` serves on a free port; `stop()` shuts the server down."""

    def __init__(self, write_key: str | None = None) -> None:
        self._collector = Collector(write_key=write_key)
        self.write_key = write_key

    @property
    def url(self) -> str:
        return self._collector.url

    def start(self) -> StubCollector:
        self._collector.start()
        return self

    def stop(self) -> None:
        self._collector.close()

    def snapshot(self) -> list[dict[str, Any]]:
        """Every message stored so far, oldest first."""
        return self._collector.messages()

    def rejections(self) -> list[dict[str, Any]]:
        """Requests the collector refused (a wrong write key among them)."""
        return self._collector.rejections()
