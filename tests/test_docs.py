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
- A block listed in NOT_RUN_BLOCKS (page and first line, with the reason) is not run:
  configuration of other programs, or code that needs what a test cannot have. Keep
  that list short; each entry is debt.
- ```bash blocks (and the `$ ` lines of ```console blocks): every command, comments
  aside, is one of the README's two commands (CI runs them as
  `.ci/run`), a `segment-client ...` invocation (run here against the stub, must exit 0),
  or in NOT_RUN with the reason it cannot run in a test.
- Any other language fails unless the block is in NOT_RUN_BLOCKS.

Each page's python blocks run in a fresh interpreter (tests/docs_runner.py), so a page
that monkey-patches with gevent or installs a signal handler affects nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.stub_collector import StubCollector

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")], key=lambda p: str(p)
)

#: Shell commands run as written by CI: `.ci/run` runs scripts/test.sh (the README's test
#: command), and the demo is the README's main job.
README_COMMANDS = {"bash scripts/demo.sh", "bash scripts/test.sh"}
SHELL_LANGS = {"bash", "console"}
#: Commands shown to readers that a test cannot run, with the reason.
NOT_RUN = {
    "pip install segment-client": "installs from PyPI; the tests run the checkout itself",
    "pip install segment-client[oauth]": (
        "installs from PyPI; the test extra installs the same packages"
    ),
    "segment-client collector": "serves until stopped; the collector's own tests run it",
    ".venv/bin/python -m pytest tests/browser -q": "the browser tests, which the main "
    "suite runs",
}
#: Python blocks not run, as (page, first line): fragments of other programs' files, or
#: features not merged yet. Each is debt: make it runnable or move it to examples/.
NOT_RUN_BLOCKS: dict[tuple[str, str], str] = {
    ("docs/deploying.md", "class FlushAfterRequest:"): "wraps an `application` defined "
    "by the user's WSGI module",
    ("docs/deploying.md", "from contextlib import asynccontextmanager"): "needs FastAPI, "
    "not a test dependency yet (integrations, issue 5)",
    ("docs/deploying.md", "from segment_client import Client"): "imports "
    "segment_client.integrations.aws_lambda (issue 5, not merged yet)",
    ("docs/deploying.md", "import segment_client"): "install_sigterm_handler() is not "
    "merged yet (issue 5), and `client` comes from the user's module",
    ("docs/security.md", "from pathlib import Path"): "reads a private key from "
    "/run/secrets; tests/test_oauth.py covers OAuth with a generated key",
    ("docs/security.md", "client = Client("): "needs certificate files on disk; "
    "tests/test_network.py covers verify= and cert=",
    ("docs/security.md",
     'client = Client("WRITE_KEY", proxies={"https": "http://proxy.internal:3128"})'): (
        "uses the `Client` imported by the OAuth block above, which is not run"
    ),
    ("docs/deploying.md", "[uwsgi]"): "uWSGI configuration; tests/test_concurrency_models.py "
    "runs a real uWSGI worker",
    ("docs/deploying.md", "spec:"): "Kubernetes pod configuration",
    ("docs/debugger.md", "from segment_client.collector import Collector"): "serves until "
    "interrupted; tests/browser runs the same collector and page",
}
#: A page's blocks run in seconds; a block that serves forever fails at this bound.
BLOCKS_TIMEOUT_S = 30

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


def test_blocks_use_known_conventions() -> None:
    """Every block has a language this module knows how to run (or an examples/ include)."""
    problems = []
    for page in PAGES:
        page_blocks = blocks(page)
        for number, block in enumerate(page_blocks):
            if _exempt(block):
                continue
            if block.include is not None:
                path = ROOT / block.include
                if not block.include.startswith("examples/") or not path.is_file():
                    problems.append(f"{block.where}: includes {block.include!r}, "
                                    "not a file under examples/")
            elif block.lang == "text":
                if number == 0 or page_blocks[number - 1].lang != "python":
                    problems.append(f"{block.where}: a text block must follow a python block")
            elif block.lang not in ("python", *SHELL_LANGS):
                problems.append(f"{block.where}: no convention for {block.lang or 'untagged'} "
                                "blocks (see tests/test_docs.py)")
    assert not problems, "\n".join(problems)


def test_not_run_blocks_are_current() -> None:
    """Every NOT_RUN_BLOCKS entry still names a block (no stale exemptions)."""
    present = {(_page_id(b.page), _first_line(b)) for page in PAGES for b in blocks(page)}
    assert set(NOT_RUN_BLOCKS) <= present, sorted(set(NOT_RUN_BLOCKS) - present)


def test_not_run_list_is_current() -> None:
    """Every NOT_RUN entry is still shown somewhere (no stale exemptions)."""
    shown = {
        command
        for page in PAGES
        for block in blocks(page)
        if block.lang in SHELL_LANGS and block.include is None
        for command in _commands(block)
    }
    assert set(NOT_RUN) <= shown, sorted(set(NOT_RUN) - shown)


def _commands(block: Block) -> list[str]:
    """The commands of a shell block, without comments: a console block's `$ ` lines,
    every non-comment line of a bash block."""
    lines = block.body.splitlines()
    if block.lang == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands = [" ".join(shlex.split(line, comments=True)) for line in lines]
    return [command for command in commands if command]


@pytest.mark.parametrize(
    "page", [p for p in PAGES if any(b.include is None for b in blocks(p))], ids=_page_id
)
def test_page_blocks_run(page: Path, collector: StubCollector) -> None:
    """Run every block of `page` under the conventions in this module's docstring."""
    page_blocks = blocks(page)
    python = [
        (number, block) for number, block in enumerate(page_blocks)
        if block.lang == "python" and block.include is None and not _exempt(block)
    ]
    outputs = dict(zip([n for n, _ in python], _run_python(python, collector), strict=True))
    for number, block in enumerate(page_blocks):
        if block.include is not None or _exempt(block):
            continue
        if block.lang == "text":
            expected = block.body.rstrip("\n")
            actual = outputs[number - 1].rstrip("\n")
            assert actual == expected, f"{block.where}: the block above printed:\n{actual}"
        elif block.lang in SHELL_LANGS:
            for command in _commands(block):
                _run_shell(block, command, collector)


def _exempt(block: Block) -> bool:
    return (_page_id(block.page), _first_line(block)) in NOT_RUN_BLOCKS


def _first_line(block: Block) -> str:
    return next((line.strip() for line in block.body.splitlines() if line.strip()), "")


def _run_python(python: list[tuple[int, Block]], collector: StubCollector) -> list[str]:
    """Run the blocks in one fresh interpreter; returns each block's output."""
    if not python:
        return []
    env = {**os.environ, "SEGMENT_WRITE_KEY": "docs-write-key", "SEGMENT_HOST": collector.url}
    payload = json.dumps([{"where": b.where, "code": b.body} for _, b in python])
    try:
        result = subprocess.run(
            [sys.executable, str(Path(__file__).parent / "docs_runner.py"), collector.url],
            input=payload, env=env, cwd=ROOT, capture_output=True, text=True,
            timeout=BLOCKS_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the python blocks from {python[0][1].where} on did not finish within "
                    f"{BLOCKS_TIMEOUT_S} s (a server loop? add it to NOT_RUN_BLOCKS)")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["error"] is None, report["error"]
    assert all(report["closed"].values()), f"clients left open did not deliver: {report}"
    outputs: list[str] = report["outputs"]
    return outputs


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


def test_runner_sends_every_client_to_the_stub(collector: StubCollector) -> None:
    """A block naming Segment's EU host still sends to the stub; other names don't resolve."""
    code = (
        "import socket\n"
        "from segment_client import Client\n"
        "client = Client('k-eu', host='https://events.eu1.segmentapis.com')\n"
        "client.track('user-1', 'Guarded')\n"
        "assert client.close_and_flush(5)\n"
        "try:\n"
        "    socket.getaddrinfo('api.segment.io', 443)\n"
        "except OSError as error:\n"
        "    print(error)\n"
    )
    block = Block(ROOT / "docs" / "guard.md", 1, "python", code)
    [output] = _run_python([(0, block)], collector)
    assert output == "docs tests reach only 127.0.0.1, not 'api.segment.io'\n"
    assert [m for m in collector.snapshot() if m.get("event") == "Guarded"]


def test_shell_commands_drop_comments_and_output() -> None:
    """Console blocks yield only their `$ ` lines; comments are not part of a command."""
    console = Block(ROOT / "x.md", 1, "console", "$ segment-client collector   # serves\nout\n")
    bash = Block(ROOT / "x.md", 1, "bash", "# setup\npip install 'a[b]'  # note\n")
    assert _commands(console) == ["segment-client collector"]
    assert _commands(bash) == ["pip install a[b]"]
