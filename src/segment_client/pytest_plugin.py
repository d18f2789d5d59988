"""The pytest plugin of segment_client: the `segment_recorder` fixture and a network guard.

Registered through the `pytest11` entry point, so it is active in any project that
installs segment-client. Loading it runs `segment_client/__init__.py` (it is a submodule)
and nothing else of the package: that import loads no heavy dependency (requests,
backoff and dateutil are imported where first used; tests/test_imports.py guards it), and
the recorder, the collector and the frameworks are imported only when a test uses them.
At configure time only `segment_client._guard` is used.

```python
def test_checkout(segment_recorder):
    client = segment_recorder.client()
    client.track("user-1", "Order Completed", {"revenue": 59.99})
    segment_recorder.assert_tracked("Order Completed", user_id="user-1", count=1)
```

During a test session no `Client` sends a request anywhere but to this machine
(127.0.0.0/8, ::1, localhost): in a test that uses `segment_recorder`, every client
created during the test that would send elsewhere records into the recorder instead;
anywhere else such a request is refused (the client reports a `TransportError` through
`on_error` and its log) and the test fails, naming the fixture and the way to allow the
network: the `segment_allow_network` marker on a test, or the ini option
`segment_client_allow_network = true` for the whole session.

Clients created elsewhere (a module-level client, an integration's) are recorded with
`segment_recorder.attach(client)`, or for every test through the `segment_client_attach`
ini option: lines of `module:attribute`, where the attribute is a `Client` or a callable
returning one.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .testing import SegmentRecorder

__all__ = [
    "ALLOW_INI",
    "ALLOW_MARKER",
    "ATTACH_INI",
    "is_loopback_url",
    "pytest_addoption",
    "resolve_client",
    "segment_recorder",
]

ATTACH_INI = "segment_client_attach"
ALLOW_INI = "segment_client_allow_network"
ALLOW_MARKER = "segment_allow_network"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        ATTACH_INI,
        type="linelist",
        default=[],
        help="segment_client: clients the segment_recorder fixture attaches to, as "
        "module:attribute lines (a Client, or a callable returning one)",
    )
    parser.addini(
        ALLOW_INI,
        type="bool",
        default=False,
        help="segment_client: let clients send to hosts other than this machine during "
        "tests (default false: such requests are refused and the test fails)",
    )


def is_loopback_url(url: str) -> bool:
    """True when `url` names this machine: localhost, 127.0.0.0/8 or ::1."""
    from ipaddress import ip_address  # only when a request is checked
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _requests_mocked() -> bool:
    """True while a mocking library intercepts `requests` (responses, requests-mock,
    `unittest.mock.patch`): the request never leaves the process, so it is not refused."""
    adapters = sys.modules.get("requests.adapters")
    sessions = sys.modules.get("requests.sessions")
    if adapters is None or sessions is None:
        return False
    send = adapters.HTTPAdapter.send
    get_adapter = sessions.Session.get_adapter
    return (
        hasattr(send, "assert_called")  # a Mock, or an autospec function's .mock
        or hasattr(send, "mock")
        or getattr(send, "__module__", "requests.adapters") != "requests.adapters"
        or getattr(get_adapter, "__module__", "requests.sessions") != "requests.sessions"
    )


class _NetworkGuard:
    """Decides, for the HTTP transport, whether a request may be made; thread-safe."""

    def __init__(self, allow_all: bool) -> None:
        self.allow_all = allow_all
        self._lock = threading.Lock()
        self._test: str | None = None
        self._test_allowed = False
        self._refused: list[str] = []
        self._previous: Callable[[str], str | None] | None = None

    # -- the guard ---------------------------------------------------------------------

    def __call__(self, url: str) -> str | None:
        if self.allow_all or is_loopback_url(url) or _requests_mocked():
            return None
        with self._lock:
            if self._test_allowed:
                return None
            test = self._test
        where = f"during {test}" if test else "during the test session"
        text = (
            f"request to {url} refused by the segment_client pytest plugin {where}: "
            f"tests must not send to Segment. Record the client with the segment_recorder "
            f"fixture "
            f"(segment_recorder.attach(client), or the {ATTACH_INI} ini option), or allow "
            f"the network with @pytest.mark.{ALLOW_MARKER} or {ALLOW_INI} = true"
        )
        with self._lock:
            if test is not None:
                self._refused.append(text)
        return text

    def begin(self, nodeid: str, allowed: bool) -> None:
        with self._lock:
            self._test, self._test_allowed, self._refused = nodeid, allowed, []

    def end(self) -> None:
        with self._lock:
            self._test, self._test_allowed = None, False

    def take_refusals(self) -> list[str]:
        with self._lock:
            refused, self._refused = self._refused, []
        return refused

    # -- installation ------------------------------------------------------------------

    def install(self) -> None:
        from . import _guard  # tiny, no further imports

        self._previous = _guard.set_guard(self)

    def uninstall(self) -> None:
        from . import _guard

        if self._previous is not None:
            # A nested session (pytester) gives the outer one its guard back. The
            # outermost keeps refusing: clients closed at interpreter exit still must
            # not reach Segment.
            _guard.set_guard(self._previous)


_GUARD = pytest.StashKey[_NetworkGuard]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ALLOW_MARKER}: let segment_client clients send to hosts other than this "
        "machine during this test",
    )
    guard = _NetworkGuard(allow_all=bool(config.getini(ALLOW_INI)))
    config.stash[_GUARD] = guard
    guard.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.stash.get(_GUARD, None)
    if guard is not None:
        guard.uninstall()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[
    None, object, object
]:
    guard = item.config.stash[_GUARD]
    guard.begin(item.nodeid, allowed=item.get_closest_marker(ALLOW_MARKER) is not None)
    try:
        return (yield)
    finally:
        guard.end()


def _fail_on_refusals(item: pytest.Item) -> None:
    refused = item.config.stash[_GUARD].take_refusals()
    if refused:
        count = f"{len(refused)} requests were" if len(refused) > 1 else "a request was"
        pytest.fail(f"{count} refused:\n" + "\n".join(dict.fromkeys(refused)), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    result = yield
    _fail_on_refusals(item)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[
    None, object, object
]:
    result = yield
    # Refused while fixtures closed their clients (a recorder flushes them there).
    _fail_on_refusals(item)
    return result


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
def segment_recorder(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SegmentRecorder]:
    """A `SegmentRecorder` for this test; attached clients are restored afterwards.

    Attaches the clients named by the `segment_client_attach` ini option first, then
    every `Client` created during the test that would send beyond this machine (a client
    given its own `transport`, or a loopback `host` such as a local collector, is left
    alone).
    """
    from ._client import Client
    from .testing import SegmentRecorder

    recorder = SegmentRecorder()
    original_init = Client.__init__

    def init_and_attach(client: Client, *args: Any, **kwargs: Any) -> None:
        original_init(client, *args, **kwargs)
        if kwargs.get("transport") is None and not is_loopback_url(client.host):
            recorder.attach(client)

    try:
        for target in request.config.getini(ATTACH_INI):
            recorder.attach(resolve_client(target))
        monkeypatch.setattr(Client, "__init__", init_and_attach)
        yield recorder
    finally:
        monkeypatch.setattr(Client, "__init__", original_init)
        recorder.close()
