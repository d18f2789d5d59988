"""Every code block in the docs (docs/**/*.md and README.md) is run here, or comes from
examples/, whose scripts tests/test_examples.py runs.

The conventions a page must follow:

- A page's blocks run in page order in one fresh interpreter (tests/docs_runner.py),
  in a fresh temporary working directory, with `SEGMENT_WRITE_KEY` set and
  `SEGMENT_HOST` pointing at a stub collector on 127.0.0.1. Resolving any name but
  127.0.0.1/localhost fails, and every client's HTTP transport is pointed at the stub
  whatever host it names, except a `segment_client.collector.Collector` the page started
  itself: no block can reach the real Segment API or another program's collector.
  Clients a page leaves open are closed after it and must deliver everything.
- ```python blocks share one namespace per page, like a doctest session (a block may use
  names an earlier block of the same page defined).
- A ```text block right after a python block is that block's expected output, compared
  exactly.
- ```json blocks must parse as JSON. A block with a title (```json title="plan.json") is
  a file of the page: it is written under that name in the working directory before the
  page's blocks run, so the page's code and commands can read it.
- A block whose whole body is `--8<-- "examples/..."` is taken from that file (it must
  exist; the examples tests run it, and a .json one must parse), or from one section of
  it with `--8<-- "examples/x.py:name"` (the file marks it with `--8<-- [start:name]`
  and `--8<-- [end:name]` comments, which must be there).
- ```bash blocks and ```console blocks (their `$ ` lines; a line ending in `\\`
  continues on the next): every command, comments aside, is one of the README's two
  commands (CI runs them as `.ci/run`), a `segment-client ...` invocation, or starts with
  a NOT_RUN entry, which gives the reason it cannot run in a test. `segment-client`
  commands run at their place in the page (in-process, through the same `main` as the
  installed command) and must exit 0; in a console block, `$ echo $?` followed by a
  number states the previous command's exit status instead. A NOT_RUN `segment-client`
  command must still parse. `export SEGMENT_WRITE_KEY=...` and `export SEGMENT_HOST=...`
  lines are accepted as written: the test sets both variables itself.
- A block listed in NOT_RUN_BLOCKS (page and first line, with the reason) is not run:
  configuration of other programs, or code that needs what a test cannot have. Keep
  that list short; each entry is debt.
- Any other language (and an untagged block) fails unless the block is in NOT_RUN_BLOCKS.

Running each page in its own interpreter means a page that monkey-patches with gevent or
installs a signal handler affects nothing else.
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
from typing import Any

import pytest

from segment_client._cli import build_parser
from tests._support.stub_collector import StubCollector

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")], key=lambda p: str(p)
)

#: Shell commands run as written by CI: `.ci/run` runs scripts/test.sh (the README's test
#: command), and the demo is the README's main job.
README_COMMANDS = {"bash scripts/demo.sh", "bash scripts/test.sh"}
SHELL_LANGS = {"bash", "console"}
#: Commands shown to readers that a test cannot run, with the reason. A command is not
#: run when its words start with an entry's words.
NOT_RUN = {
    "pip install segment-client": "installs from PyPI; the tests run the checkout itself",
    "pip install 'segment-client[oauth]'": (
        "installs from PyPI; scripts/test.sh installs the checkout with the same extra"
    ),
    "pip install 'segment-client[fast]'": (
        "installs from PyPI; scripts/test.sh installs the checkout with the same extra"
    ),
    "segment-client collector": "serves until stopped; the collector's own tests run it",
    ".venv/bin/python -m pytest tests/browser -q": "the browser tests, which the main "
    "suite runs",
    "python3 bench/run.py": "the benchmark runs for minutes and installs the peers; "
    "tests/test_bench_smoke.py runs it with --quick",
}
#: Environment variables a console block may `export`: the test provides both.
EXPORTED = {"SEGMENT_WRITE_KEY", "SEGMENT_HOST"}
#: Python blocks not run, as (page, first line): fragments of other programs' files, or
#: features not merged yet. Each is debt: make it runnable or move it to examples/.
NOT_RUN_BLOCKS: dict[tuple[str, str], str] = {
    ("docs/security.md", "from pathlib import Path"): "reads a private key from "
    "/run/secrets; tests/test_oauth.py covers OAuth with a generated key",
    ("docs/security.md", "client = Client("): "needs certificate files on disk; "
    "tests/test_network.py covers verify= and cert=",
    ("docs/deploying.md", "[uwsgi]"): "uWSGI configuration; tests/test_concurrency_models.py "
    "runs a real uWSGI worker",
    ("docs/deploying.md", "spec:"): "Kubernetes pod configuration",
    ("docs/debugger.md", "from segment_client.collector import Collector"): "serves until "
    "interrupted; tests/browser runs the same collector and page",
}
#: A page's blocks run in seconds; a block that serves forever fails at this bound.
BLOCKS_TIMEOUT_S = 30

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w+-]*)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$",
    re.MULTILINE | re.DOTALL,
)
_TITLE = re.compile(r'\btitle="(?P<title>[^"]+)"')
_SNIPPET = re.compile(r'^--8<-- "(?P<path>[^":]+)(?::(?P<section>[\w-]+))?"$')


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    title: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def include(self) -> str | None:
        match = _SNIPPET.match(self.body.strip())
        return match["path"] if match else None

    @property
    def section(self) -> str | None:
        match = _SNIPPET.match(self.body.strip())
        return match["section"] if match else None


@dataclass
class Command:
    """One shell command of a block: its words and the exit status the page states."""

    words: list[str]
    status: int = 0

    @property
    def text(self) -> str:
        return shlex.join(self.words)


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        line = text.count("\n", 0, match.start()) + 1
        title = _TITLE.search(match["info"])
        found.append(Block(page, line, match["lang"] or "", body,
                           title["title"] if title else None))
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
        titles = [b.title for b in page_blocks if b.title is not None]
        problems += [f"{_page_id(page)}: more than one block titled {title!r}"
                     for title in sorted(set(titles)) if titles.count(title) > 1]
        for number, block in enumerate(page_blocks):
            if _exempt(block):
                continue
            if block.include is not None:
                path = ROOT / block.include
                if not block.include.startswith("examples/") or not path.is_file():
                    problems.append(f"{block.where}: includes {block.include!r}, "
                                    "not a file under examples/")
                elif block.section is not None and not all(
                    f"--8<-- [{end}:{block.section}]" in path.read_text()
                    for end in ("start", "end")
                ):
                    problems.append(f"{block.where}: {block.include} has no section "
                                    f"{block.section!r}")
                elif block.lang == "json":
                    problems += _json_problems(block, path.read_text())
            elif block.title is not None and (
                block.lang != "json" or "/" in block.title or block.title.startswith(".")
            ):
                problems.append(f"{block.where}: only json blocks may have a title (a file "
                                "name written for the page), and no directories")
            elif block.lang == "json":
                problems += _json_problems(block, block.body)
            elif block.lang == "text":
                if number == 0 or page_blocks[number - 1].lang != "python":
                    problems.append(f"{block.where}: a text block must follow a python block")
            elif block.lang in SHELL_LANGS:
                try:
                    _commands(block)
                except ValueError as exc:
                    problems.append(f"{block.where}: {exc}")
            elif block.lang != "python":
                problems.append(f"{block.where}: no convention for {block.lang or 'untagged'} "
                                "blocks (see tests/test_docs.py)")
    assert not problems, "\n".join(problems)


def _json_problems(block: Block, text: str) -> list[str]:
    try:
        json.loads(text)
    except ValueError as exc:
        return [f"{block.where}: a json block must be valid JSON: {exc}"]
    return []


def test_not_run_blocks_are_current() -> None:
    """Every NOT_RUN_BLOCKS entry still names a block (no stale exemptions)."""
    present = {(_page_id(b.page), _first_line(b)) for page in PAGES for b in blocks(page)}
    assert set(NOT_RUN_BLOCKS) <= present, sorted(set(NOT_RUN_BLOCKS) - present)


def test_not_run_list_is_current() -> None:
    """Every NOT_RUN entry is still shown somewhere (no stale exemptions)."""
    shown = [
        command.words
        for page in PAGES
        for block in blocks(page)
        if block.lang in SHELL_LANGS and block.include is None and not _exempt(block)
        for command in _commands(block)
    ]
    stale = [entry for entry in NOT_RUN
             if not any(_starts_with(words, shlex.split(entry)) for words in shown)]
    assert not stale, stale


def _starts_with(words: list[str], prefix: list[str]) -> bool:
    return words[: len(prefix)] == prefix


def _not_run_reason(command: Command) -> str | None:
    for entry, reason in NOT_RUN.items():
        if _starts_with(command.words, shlex.split(entry)):
            return reason
    return None


def _commands(block: Block) -> list[Command]:
    """The commands of a shell block, without comments or output.

    A console block's commands are its `$ ` lines, a bash block's every non-comment
    line; a line ending in a backslash continues on the next. `$ echo $?` and the number
    printed after it set the previous command's expected exit status. Raises ValueError
    for a line the shell could not parse either (an unclosed quote).
    """
    lines = block.body.splitlines()
    commands: list[Command] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if block.lang == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        while line.endswith("\\") and index < len(lines):
            line = line[:-1] + " " + lines[index].strip()
            index += 1
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise ValueError(f"cannot split {line!r}: {exc}") from None
        if not words:
            continue
        if words == ["echo", "$?"] and block.lang == "console":
            output = lines[index].strip() if index < len(lines) else ""
            if not commands or not output.isdigit():
                raise ValueError("`$ echo $?` must follow a command and be followed by "
                                 "its exit status")
            commands[-1].status = int(output)
            index += 1
            continue
        if words[0] == "export" and len(words) == 2 and words[1].split("=")[0] in EXPORTED:
            continue
        commands.append(Command(words))
    return commands


def _shell_steps(block: Block) -> list[dict[str, Any]]:
    """The runner steps of a shell block: its `segment-client` commands; the others are
    README commands or NOT_RUN ones (checked here)."""
    steps = []
    for command in _commands(block):
        if command.words in [shlex.split(c) for c in README_COMMANDS]:
            continue
        if _not_run_reason(command) is not None:
            if command.words[0] == "segment-client":
                _assert_parses(block, command)
            continue
        assert command.words[0] == "segment-client", (
            f"{block.where}: {command.text!r} is not a README command or a segment-client "
            "invocation; run it here or add it to NOT_RUN with a reason"
        )
        steps.append({"where": block.where, "argv": command.words[1:],
                      "status": command.status})
    return steps


def _assert_parses(block: Block, command: Command) -> None:
    try:
        build_parser().parse_args(command.words[1:])
    except SystemExit:
        pytest.fail(f"{block.where}: {command.text!r} does not parse (see stderr)")


@pytest.mark.parametrize(
    "page", [p for p in PAGES if any(b.include is None for b in blocks(p))], ids=_page_id
)
def test_page_blocks_run(page: Path, collector: StubCollector, tmp_path: Path) -> None:
    """Run every block of `page` under the conventions in this module's docstring."""
    page_blocks = blocks(page)
    for block in page_blocks:
        if block.title is not None and block.include is None and not _exempt(block):
            (tmp_path / block.title).write_text(block.body)
    steps: list[tuple[int, dict[str, Any]]] = []
    for number, block in enumerate(page_blocks):
        if block.include is not None or _exempt(block):
            continue
        if block.lang == "python":
            steps.append((number, {"where": block.where, "code": block.body}))
        elif block.lang in SHELL_LANGS:
            steps += [(number, step) for step in _shell_steps(block)]
    results = _run_steps([step for _, step in steps], collector, tmp_path)
    outputs: dict[int, dict[str, Any]] = {}
    for (number, step), result in zip(steps, results, strict=True):
        outputs[number] = result
        if "argv" in step:
            command = shlex.join(["segment-client", *step["argv"]])
            assert result["status"] == step["status"], (
                f"{step['where']}: {command!r} exited {result['status']}, "
                f"not {step['status']}:\n{result['stderr']}"
            )
    for number, block in enumerate(page_blocks):
        if block.lang == "text" and not _exempt(block):
            expected = block.body.rstrip("\n")
            actual = outputs[number - 1]["stdout"].rstrip("\n")
            assert actual == expected, f"{block.where}: the block above printed:\n{actual}"


def _exempt(block: Block) -> bool:
    return (_page_id(block.page), _first_line(block)) in NOT_RUN_BLOCKS


def _first_line(block: Block) -> str:
    return next((line.strip() for line in block.body.splitlines() if line.strip()), "")


def _run_steps(
    steps: list[dict[str, Any]], collector: StubCollector, cwd: Path
) -> list[dict[str, Any]]:
    """Run a page's steps in one fresh interpreter in `cwd`; returns each step's result
    (`stdout`, and for a command `status` and `stderr`). Fails on a python error."""
    if not steps:
        return []
    env = {**os.environ, "SEGMENT_WRITE_KEY": "docs-write-key", "SEGMENT_HOST": collector.url}
    try:
        result = subprocess.run(
            [sys.executable, str(Path(__file__).parent / "docs_runner.py"), collector.url],
            input=json.dumps(steps), env=env, cwd=cwd, capture_output=True, text=True,
            timeout=BLOCKS_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the blocks from {steps[0]['where']} on did not finish within "
                    f"{BLOCKS_TIMEOUT_S} s (a server loop? add it to NOT_RUN_BLOCKS)")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["error"] is None, report["error"]
    assert all(report["closed"].values()), f"clients left open did not deliver: {report}"
    results: list[dict[str, Any]] = report["results"]
    return results


def test_extraction_finds_indented_titled_and_snippet_blocks(tmp_path: Path) -> None:
    """The fence parser handles blocks inside list items, titles and whole-file includes."""
    page = tmp_path / "page.md"
    page.write_text(
        "Intro\n\n```python\nx = 1\n```\n\n1. item\n\n    ```bash\n    ls\n    ```\n\n"
        '```python\n--8<-- "examples/basic.py"\n```\n\n'
        '```json title="plan.json"\n{}\n```\n\n'
        '```python\n--8<-- "examples/x.py:part"\n```\n'
    )
    found = blocks(page)
    assert [(b.lang, b.body, b.include, b.title) for b in found] == [
        ("python", "x = 1\n", None, None),
        ("bash", "ls\n", None, None),
        ("python", '--8<-- "examples/basic.py"\n', "examples/basic.py", None),
        ("json", "{}\n", None, "plan.json"),
        ("python", '--8<-- "examples/x.py:part"\n', "examples/x.py", None),
    ]
    assert found[-1].section == "part"


def test_runner_sends_every_client_to_the_stub(
    collector: StubCollector, tmp_path: Path
) -> None:
    """A block naming Segment's EU host still sends to the stub; other names don't resolve;
    a client sent to a Collector the page started reaches that collector."""
    code = (
        "import socket\n"
        "from segment_client import Client\n"
        "from segment_client.collector import Collector\n"
        "client = Client('k-eu', host='https://events.eu1.segmentapis.com')\n"
        "client.track('user-1', 'Guarded')\n"
        "assert client.close_and_flush(5)\n"
        "with Collector() as local:\n"
        "    client = Client('k-local', host=local.url)\n"
        "    client.track('user-1', 'Kept Local')\n"
        "    assert client.close_and_flush(5)\n"
        "    print([m['event'] for m in local.messages()])\n"
        "try:\n"
        "    socket.getaddrinfo('api.segment.io', 443)\n"
        "except OSError as error:\n"
        "    print(error)\n"
    )
    [result] = _run_steps([{"where": "docs/guard.md:1", "code": code}], collector, tmp_path)
    assert result["stdout"] == (
        "['Kept Local']\ndocs tests reach only 127.0.0.1, not 'api.segment.io'\n"
    )
    events = [m.get("event") for m in collector.snapshot()]
    assert "Guarded" in events
    assert "Kept Local" not in events


def test_runner_runs_commands_in_page_order(collector: StubCollector, tmp_path: Path) -> None:
    """A command runs between the python blocks around it, in the page's directory, and
    reports its exit status; a usage error is status 2, not a failed page."""
    steps: list[dict[str, Any]] = [
        {"where": "x.md:1", "code": "open('plan.json', 'w').write('{\"events\": {}}')\n"},
        {"where": "x.md:2", "argv": ["typegen", "plan.json", "-o", "events_mod.py"]},
        {"where": "x.md:3", "code": "import events_mod\nprint('imported')\n"},
        {"where": "x.md:4", "argv": ["track", "--user-id", "u"]},
        {"where": "x.md:5", "argv": ["track", "--user-id", "u", "--event", "Docs CLI"]},
    ]
    results = _run_steps(steps, collector, tmp_path)
    assert [r["status"] for r in results] == [None, 0, None, 2, 0]
    assert results[2]["stdout"] == "imported\n"
    assert "--event" in results[3]["stderr"]
    assert "Docs CLI" in [m.get("event") for m in collector.snapshot()]


def test_shell_commands_drop_comments_and_output() -> None:
    """Console blocks yield only their `$ ` lines (continued lines joined); comments are
    not part of a command; quotes are honoured; `echo $?` states an exit status."""
    console = Block(ROOT / "x.md", 1, "console", (
        "$ segment-client collector   # serves\nout\n"
        "$ export SEGMENT_HOST=http://127.0.0.1:8787  # the test sets it\n"
        "$ segment-client track --event \"Signed Up\" \\\n"
        "    --properties '{\"plan\": \"pro\"}'\n"
        "error text\n$ echo $?\n1\n"
    ))
    bash = Block(ROOT / "x.md", 1, "bash", "# setup\npip install 'a[b]'  # note\n")
    assert [(c.words, c.status) for c in _commands(console)] == [
        (["segment-client", "collector"], 0),
        (["segment-client", "track", "--event", "Signed Up", "--properties",
          '{"plan": "pro"}'], 1),
    ]
    assert [c.words for c in _commands(bash)] == [["pip", "install", "a[b]"]]
    with pytest.raises(ValueError, match="cannot split"):
        _commands(Block(ROOT / "x.md", 1, "bash", "echo 'unclosed\n"))


def test_every_client_option_is_documented_in_configuration() -> None:
    """docs/configuration.md lists every keyword argument of Client, and nothing else."""
    import inspect

    from segment_client import Client

    text = (ROOT / "docs" / "configuration.md").read_text()
    options_table = text.split("## Options", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", options_table, re.MULTILINE))
    parameters = set(inspect.signature(Client).parameters)
    assert sorted(parameters - documented) == [], "Client options missing from the table"
    assert sorted(documented - parameters) == [], "the table lists options Client lacks"
