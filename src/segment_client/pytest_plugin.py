"""The pytest plugin of segment_client: the `segment_recorder` fixture.

Registered through the `pytest11` entry point, so it is available in any project that
installs segment-client. It costs nothing unless a test asks for the fixture: this module
imports only pytest, and segment_client is imported when the fixture is first used.

```python
def test_checkout(segment_recorder):
    client = segment_recorder.client()
    client.track("user-1", "Order Completed", {"revenue": 59.99})
    segment_recorder.assert_tracked("Order Completed", user_id="user-1", count=1)
```

Clients created elsewhere (a module-level client, an integration's) are recorded with
`segment_recorder.attach(client)`, or for every test through the `segment_client_attach`
ini option: lines of `module:attribute`, where the attribute is a `Client` or a callable
returning one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .testing import SegmentRecorder

__all__ = ["pytest_addoption", "resolve_client", "segment_recorder"]

ATTACH_INI = "segment_client_attach"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        ATTACH_INI,
        type="linelist",
        default=[],
        help="segment_client: clients the segment_recorder fixture attaches to, as "
        "module:attribute lines (a Client, or a callable returning one)",
    )


def resolve_client(target: str) -> Any:
    """Import `module:attribute` (attribute may be dotted) and call it if callable."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise pytest.UsageError(
            f"{ATTACH_INI}: expected 'module:attribute', got {target!r}"
        )
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    # A Client is not callable, so a callable here is a factory such as get_client().
    return obj() if callable(obj) else obj


@pytest.fixture
def segment_recorder(request: pytest.FixtureRequest) -> Iterator[SegmentRecorder]:
    """A `SegmentRecorder` for this test; attached clients are restored afterwards.

    Attaches the clients named by the `segment_client_attach` ini option first.
    """
    from .testing import SegmentRecorder

    recorder = SegmentRecorder()
    try:
        for target in request.config.getini(ATTACH_INI):
            recorder.attach(resolve_client(target))
        yield recorder
    finally:
        recorder.close()
