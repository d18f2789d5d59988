"""Frameworks stay optional: nothing imports them until their integration is imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
FRAMEWORKS = ["django", "flask", "celery", "fastapi", "starlette", "asgiref", "kombu"]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": SRC},
        check=False,
    )


def test_import_segment_client_imports_no_framework() -> None:
    done = _run(
        f"""
        import sys
        import segment_client, segment_client.integrations, segment_client.testing
        import segment_client.integrations.asgi, segment_client.integrations.aws_lambda
        loaded = [name for name in {FRAMEWORKS!r} if name in sys.modules]
        print(loaded)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("integration", "blocked", "extra"),
    [("django", "django", "django"), ("flask", "flask", "flask"), ("celery", "celery", "celery")],
)
def test_missing_framework_names_the_extra(integration: str, blocked: str, extra: str) -> None:
    done = _run(
        f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == {blocked!r} or name.startswith({blocked!r} + "."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        import segment_client
        try:
            import segment_client.integrations.{integration}
        except segment_client.MissingDependencyError as exc:
            assert isinstance(exc, ImportError)
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert f"pip install 'segment-client[{extra}]'" in done.stdout
    assert f"segment_client.integrations.{integration}" in done.stdout
