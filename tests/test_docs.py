"""Every code block in the docs (docs/**/*.md and README.md) is run here, or comes from
examples/, whose scripts tests/test_examples.py runs.

The conventions a page must follow:

- ```python blocks run in page order in one namespace per page, like a doctest session,
  with `SEGMENT_WRITE_KEY` set and `SEGMENT_HOST` pointing at a stub collector on
  127.0.0.1. Whatever host a block names, its clients' HTTP transport is pointed at the
  stub, and resolving any name but 127.0.0.1/localhost fails: no block can reach the real
  Segment API. Clients a page leaves open are closed after it and must deliver everything.
- A ```text block right after a python block is that block's expected output, compared
  exactly.
- A block whose whole body is `--8<-- "examples/..."` is taken from that file (it must
  exist; the examples tests run it).
- ```bash blocks: every command is one of the README's two commands (CI runs them as
  `.ci/run`), a `segment-client ...` invocation (run here against the stub, must exit 0),
  or in NOT_RUN with the reason it cannot run in a test.
- Any other language fails: add a convention here first.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import segment_client
from segment_client import _client, _transport
from segment_client._client import _open_clients
from tests.stub_collector import StubCollector

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")], key=lambda p: str(p)
)

#: Shell commands run as written by CI: `.ci/run` runs scripts/test.sh (the README's test
#: command), and the demo is the README's main job.
README_COMMANDS = {"bash scripts/demo.sh", "bash scripts/test.sh"}
#: Commands shown to readers that a test cannot run, with the reason.
NOT_RUN = {
    "pip install segment-client": "installs from PyPI; the tests run the checkout itself",
}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
    re.MULTILINE | re.DOTALL,
)
_SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"$')


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def include(self) -> str | None:
        match = _SNIPPET.match(self.body.strip())
        return match["path"] if match else None


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(page, line, match["lang"] or "", body))
    return found


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture(name="collector", scope="module")
def _collector() -> Iterator[StubCollector]:
    stub = StubCollector().start()
    yield stub
    stub.stop()


@pytest.fixture(name="sandbox")
def _sandbox(collector: StubCollector, monkeypatch: pytest.MonkeyPatch) -> StubCollector:
    """Environment and guards every docs block runs under."""
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "docs-write-key")
    monkeypatch.setenv("SEGMENT_HOST", collector.url)
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOCAL_HOSTS:
            raise OSError(f"docs tests reach only 127.0.0.1, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)

    class ToStub(_transport.HTTPTransport):
        def __init__(self, write_key: str, *, url: str, **options: Any) -> None:
            super().__init__(write_key, url=collector.url + "/v1/batch", **options)

    for module in (_client, _transport, segment_client):
        monkeypatch.setattr(module, "HTTPTransport", ToStub)
    return collector


def test_blocks_use_known_conventions() -> None:
    """Every block has a language this module knows how to run (or an examples/ include)."""
    problems = []
    for page in PAGES:
        page_blocks = blocks(page)
        for number, block in enumerate(page_blocks):
            if block.include is not None:
                path = ROOT / block.include
                if not block.include.startswith("examples/") or not path.is_file():
                    problems.append(f"{block.where}: includes {block.include!r}, "
                                    "not a file under examples/")
            elif block.lang == "text":
                if number == 0 or page_blocks[number - 1].lang != "python":
                    problems.append(f"{block.where}: a text block must follow a python block")
            elif block.lang not in ("python", "bash"):
                problems.append(f"{block.where}: no convention for {block.lang or 'untagged'} "
                                "blocks (see tests/test_docs.py)")
    assert not problems, "\n".join(problems)


def test_not_run_list_is_current() -> None:
    """Every NOT_RUN entry is still shown somewhere (no stale exemptions)."""
    shown = {
        command
        for page in PAGES
        for block in blocks(page)
        if block.lang == "bash" and block.include is None
        for command in _commands(block)
    }
    assert set(NOT_RUN) <= shown, sorted(set(NOT_RUN) - shown)


def _commands(block: Block) -> list[str]:
    return [
        line.strip() for line in block.body.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


@pytest.mark.parametrize(
    "page", [p for p in PAGES if any(b.include is None for b in blocks(p))], ids=_page_id
)
def test_page_blocks_run(page: Path, sandbox: StubCollector) -> None:
    """Run every block of `page` under the conventions in this module's docstring."""
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    before = set(_open_clients)
    page_blocks = blocks(page)
    outputs: dict[int, str] = {}
    try:
        for number, block in enumerate(page_blocks):
            if block.include is not None:
                continue
            if block.lang == "python":
                outputs[number] = _run_python(block, namespace)
            elif block.lang == "text":
                expected = block.body.rstrip("\n")
                actual = outputs[number - 1].rstrip("\n")
                assert actual == expected, f"{block.where}: the block above printed:\n{actual}"
            elif block.lang == "bash":
                for command in _commands(block):
                    _run_shell(block, command, sandbox)
    finally:
        left_open = set(_open_clients) - before
        results = {repr(c): c.close_and_flush(5) for c in left_open}
    assert all(results.values()), f"{page}: clients left open did not deliver: {results}"


def _run_python(block: Block, namespace: dict[str, Any]) -> str:
    out = io.StringIO()
    code = compile(block.body, block.where, "exec")
    with contextlib.redirect_stdout(out):
        exec(code, namespace)
    return out.getvalue()


def _run_shell(block: Block, command: str, collector: StubCollector) -> None:
    if command in README_COMMANDS or command in NOT_RUN:
        return
    words = shlex.split(command)
    assert words[0] == "segment-client", (
        f"{block.where}: {command!r} is not a README command or a segment-client "
        "invocation; run it here or add it to NOT_RUN with a reason"
    )
    executable = Path(sys.executable).parent / "segment-client"
    env = {**os.environ, "SEGMENT_HOST": collector.url, "SEGMENT_WRITE_KEY": "docs-write-key"}
    result = subprocess.run(
        [str(executable), *words[1:]], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode == 0, f"{block.where}: {command!r} failed:\n{result.stderr}"


def test_extraction_finds_indented_and_snippet_blocks(tmp_path: Path) -> None:
    """The fence parser handles blocks inside list items and whole-file includes."""
    page = tmp_path / "page.md"
    page.write_text(
        "Intro\n\n```python\nx = 1\n```\n\n1. item\n\n    ```bash\n    ls\n    ```\n\n"
        '```python\n--8<-- "examples/basic.py"\n```\n'
    )
    found = blocks(page)
    assert [(b.lang, b.body, b.include) for b in found] == [
        ("python", "x = 1\n", None),
        ("bash", "ls\n", None),
        ("python", '--8<-- "examples/basic.py"\n', "examples/basic.py"),
    ]


def test_sandbox_sends_every_client_to_the_stub(sandbox: StubCollector) -> None:
    """A block naming Segment's EU host still sends to the stub; other names don't resolve."""
    client = segment_client.Client("k-eu", host="https://events.eu1.segmentapis.com")
    client.track("user-1", "Guarded")
    assert client.close_and_flush(5)
    assert [m["event"] for m in sandbox.snapshot() if m.get("event") == "Guarded"] == [
        "Guarded"
    ]
    with pytest.raises(OSError, match=r"only 127\.0\.0\.1"):
        socket.getaddrinfo("api.segment.io", 443)
