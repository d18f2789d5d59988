"""typegen: generated modules type-check (mypy --strict, ruff), catch misuse, and send
messages that follow their plan."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from segment_client import Client
from segment_client._plan._typegen import generate, main
from segment_client.testing import RecordingTransport

PLANS = Path(__file__).parent / "plans"
PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"
SAMPLES = ("native_shop", "segment_public_api", "typewriter_plan")

GOOD_USAGE = """
import datetime as dt

import native_shop as shop
import segment_public_api as api
import typewriter_plan as tw

from segment_client import Client


def use_native_shop(client: Client) -> list[str]:
    return [
        shop.order_completed(
            client, "u1", order_id="o1", revenue=10, currency="USD",
            products=[{"sku": "ABC-1", "price": 2.5}, {"sku": "ABC-2", "price": 1, "quantity": 2}],
            shipping={"method": "express", "address": {"country": "DE"}},
        ),
        shop.product_viewed(client, "u1", sku="ABC-1", position=3),
        shop.signed_up(client, "u1", plan="pro", signed_up_at=dt.datetime.now(dt.timezone.utc)),
        shop.app_opened(client, anonymous_id="a1", extra_properties={"source": "push"}),
        shop.identify(client, "u1", email="a@b.c", age=30),
        shop.group(client, "u1", "g1", name="Acme", plan="free"),
    ]


def use_segment_public_api(client: Client) -> list[str]:
    return [
        api.example_event(
            client, "u1", required_sub_property="x", class_=True, user_id_="other",
            camel_case_name=3, nullable_thing=None, when="2024-05-01T10:00:00Z",
            nested_object={"required sub-property": "y"}, tags=["a", "b"],
        ),
        api.order_completed(client, "u1", order_id="o", revenue=1.0, products=[{"sku": "S"}]),
        api.identify(client, "u1", email="x@y.z", plan="pro"),
        api.group(client, "u1", "g1", name="Acme"),
    ]


def use_typewriter_plan(client: Client) -> list[str]:
    return [
        tw.video_played(client, "u1", video_id="v", quality="720p", chapters=[[1, 2]]),
        tw.empty_event(client, "u1"),
        tw.identify_event(client, "u1"),
        tw.identify(client, "u1", name="Ann"),
    ]
"""

# Each line must be reported by mypy; nothing else may be.
BAD_USAGE = """
import native_shop as shop
import typewriter_plan as tw

from segment_client import Client


def misuse(client: Client) -> None:
    shop.order_completed(client, "u1", revenue=10)
    shop.order_completed(client, "u1", order_id="o", revenue="10")
    shop.signed_up(client, "u1", plan="gold")
    shop.product_viewed(client, "u1", sku="x", colour="red")
    shop.order_completed(client, "u1", order_id="o", revenue=1, products=[{"sku": "A"}])
    shop.order_complete(client, "u1")
    tw.video_played(client, "u1", video_id="v", quality="4k")
    shop.group(client, "u1", "g1", name="Acme", website="x")
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    for name in SAMPLES:
        assert main([str(PLANS / f"{name}.json"), "-o", str(out / f"{name}.py")]) == 0
    (out / "good_usage.py").write_text(textwrap.dedent(GOOD_USAGE).lstrip(), encoding="utf-8")
    (out / "bad_usage.py").write_text(textwrap.dedent(BAD_USAGE).lstrip(), encoding="utf-8")
    return out


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_passes_mypy_strict_and_mypy_catches_misuse(generated: Path) -> None:
    files = [f"{name}.py" for name in SAMPLES] + ["good_usage.py", "bad_usage.py"]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(generated / ".mypy_cache"), *files],
        cwd=generated, capture_output=True, text=True, timeout=300, check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    where = {(m.group(1), int(m.group(2)))
             for line in errors if (m := re.match(r"([\w.]+):(\d+):", line))}
    bad_lines = {
        n for n, line in enumerate(
            textwrap.dedent(BAD_USAGE).lstrip().splitlines(), start=1
        ) if line.startswith(("    shop.", "    tw."))
    }
    assert where == {("bad_usage.py", n) for n in bad_lines}, result.stdout + result.stderr


def test_generated_code_passes_ruff(generated: Path) -> None:
    files = [str(generated / f"{name}.py") for name in SAMPLES]
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--config", str(PYPROJECT), *files],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_generated_functions_send_messages_that_follow_the_plan(
    generated: Path, make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    for name in SAMPLES:
        _load(generated / f"{name}.py", name)
    sys.path.insert(0, str(generated))
    try:
        usage = _load(generated / "good_usage.py", "good_usage")
        for name in SAMPLES:
            # Each module's calls go through a client that raises on any violation.
            client = make_client(
                tracking_plan=PLANS / f"{name}.json", on_violation="raise", on_unplanned="drop"
            )
            ids = getattr(usage, f"use_{name}")(client)
            assert client.flush(5)
            stats = client.stats()
            assert (stats.violations, stats.unplanned, stats.delivered) == (0, 0, len(ids))
        messages = transport.messages
    finally:
        sys.path.remove(str(generated))
        for name in (*SAMPLES, "good_usage"):
            sys.modules.pop(name, None)
    by_event = {m.get("event", m["type"]): m for m in messages}
    order = by_event["Order Completed"]["properties"]
    assert order["order_id"] in ("o1", "o")
    example = by_event["Example Event"]["properties"]
    assert example == {
        "required sub-property": "x", "class": True, "user_id": "other", "camelCaseName": 3,
        "when": "2024-05-01T10:00:00Z", "nested object": {"required sub-property": "y"},
        "tags": ["a", "b"],
    }  # nullable_thing=None was omitted
    assert by_event["App Opened"]["properties"] == {"source": "push"}
    assert by_event["App Opened"]["anonymousId"] == "a1"
    assert by_event["group"]["groupId"] == "g1"
    assert by_event["Video Played"]["properties"]["chapters"] == [[1, 2]]


def test_header_names_the_plan(generated: Path) -> None:
    text = (generated / "native_shop.py").read_text(encoding="utf-8")
    first = text.splitlines()[:3]
    assert first[0].startswith("# Generated by segment-client typegen")
    assert "native_shop.json" in first[0]
    assert "Do not edit" in first[1]
    assert "tracking plan 'Shop'" in first[2]


def test_generation_is_deterministic() -> None:
    plan = PLANS / "native_shop.json"
    assert generate(plan) == generate(plan)


def test_cli_writes_stdout_and_reports_bad_plans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(PLANS / "typewriter_plan.json")]) == 0
    out = capsys.readouterr().out
    assert "def video_played(" in out
    bad = tmp_path / "bad.json"
    bad.write_text('{"events": {"A": {"properties": {"x": {"oneOf": []}}}}}', encoding="utf-8")
    assert main([str(bad), "-o", str(tmp_path / "x.py")]) == 2
    err = capsys.readouterr().err
    assert "rule track 'A'" in err and "'oneOf' is not supported" in err
    assert not (tmp_path / "x.py").exists()


def test_unusual_plans_still_generate_valid_python() -> None:
    plan = {"events": {
        "class": {"properties": {"def": "string", "from": {"type": "integer", "required": True}}},
        "Class": {"properties": {"a b": {"properties": {"c-d": "string"}}}},
        "2 Fast": {"properties": {"x": {"enum": [1.5, 2.5]}, "y": {"type": ["null"]}}},
    }}
    code = generate(plan, source="odd.json")
    namespace: dict[str, Any] = {}
    exec(compile(code, "odd.py", "exec"), namespace)
    # Rules run in sorted order: "2 Fast", "Class", "class".
    assert {"class_", "class__2", "p_2_fast"} <= set(namespace)
    transport = RecordingTransport()
    client = Client("k", transport=transport, tracking_plan=plan, on_violation="raise")
    try:
        namespace["class__2"](client, "u1", from_=3, def_="x")
        namespace["p_2_fast"](client, "u1", x=1.5)
        assert client.flush(5)
    finally:
        client.close_and_flush(5)
    assert [m["properties"] for m in transport.messages] == [{"from": 3, "def": "x"}, {"x": 1.5}]


def test_the_segment_client_command_has_typegen(tmp_path: Path) -> None:
    from segment_client._cli import main as cli_main

    out = tmp_path / "events.py"
    assert cli_main(["typegen", str(PLANS / "native_shop.json"), "-o", str(out)]) == 0
    assert "def order_completed(" in out.read_text(encoding="utf-8")


def test_a_plan_without_rules_generates_an_empty_module(tmp_path: Path) -> None:
    """No rules: a module with only its header (it used to fail with an IndexError)."""
    code = generate({"events": {}}, source="empty.json")
    assert "def " not in code and "import Client" not in code
    assert code.endswith('"""\n\nfrom __future__ import annotations\n')
    path = tmp_path / "empty.py"
    path.write_text(code, encoding="utf-8")
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--config", str(PYPROJECT), str(path)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
