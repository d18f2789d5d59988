"""The public namespace: what it exports and what importing it costs."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import segment_client


def test_all_is_sorted_and_complete() -> None:
    assert segment_client.__all__ == sorted(segment_client.__all__)
    for name in segment_client.__all__:
        assert hasattr(segment_client, name), name


def test_public_classes_report_the_public_module() -> None:
    assert segment_client.Client.__module__ == "segment_client"
    assert segment_client.APIError.__module__ == "segment_client"


def test_version_matches_metadata() -> None:
    assert segment_client.__version__ == importlib.metadata.version("segment-client")


def test_exception_tree() -> None:
    sc = segment_client
    assert issubclass(sc.ConfigurationError, sc.SegmentError)
    assert issubclass(sc.ConfigurationError, ValueError)
    assert issubclass(sc.MessageTooLargeError, sc.MessageError)
    assert issubclass(sc.MissingDependencyError, ImportError)
    for cls in (sc.APIError, sc.TransportError, sc.QueueFullError, sc.ClientClosedError):
        assert issubclass(cls, sc.DeliveryError)


def test_import_pulls_in_no_framework() -> None:
    code = (
        "import sys, segment_client\n"
        "bad = [m for m in ('django', 'flask', 'fastapi', 'starlette', 'celery', "
        "'segment_client.collector', 'segment_client.integrations') if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_logger_has_a_null_handler() -> None:
    import logging

    handlers = logging.getLogger("segment_client").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
