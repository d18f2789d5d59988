"""The collector under test, in this process or as `segment-client collector`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, Protocol

import pytest

from segment_client.collector import Collector, Fault
from tests._support.cli_collector import CliCollector


class Target(Protocol):
    url: str

    def stats(self) -> dict[str, Any]: ...
    def events(self) -> list[dict[str, Any]]: ...
    def rejections(self) -> list[dict[str, Any]]: ...
    def set_faults(self, *faults: dict[str, Any], seed: int | None = None) -> None: ...


class InProcess:
    """`Collector` behind the same small interface as `CliCollector`."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.url = collector.url

    def stats(self) -> dict[str, Any]:
        return self.collector.stats()

    def events(self) -> list[dict[str, Any]]:
        return list(reversed(self.collector.events()))

    def rejections(self) -> list[dict[str, Any]]:
        return self.collector.rejections()

    def set_faults(self, *faults: dict[str, Any], seed: int | None = None) -> None:
        self.collector.set_faults(*(Fault.from_dict(f) for f in faults), seed=seed)


def fault(**fields: Any) -> dict[str, Any]:
    """A fault rule in its JSON form (checked by building it)."""
    return {k: v for k, v in asdict(Fault(**fields)).items() if v is not None and k != "injected"}


@pytest.fixture(name="target", params=["in_process", "subprocess"])
def _target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "in_process":
        with Collector() as collector:
            yield InProcess(collector)
    else:
        with CliCollector() as child:
            yield child
