"""What the command-line modules share: the usage error and argument types.

Its own module so that subcommands living elsewhere (the collector's, the spool's) use
them without importing the CLI that imports them.
"""

from __future__ import annotations

import argparse

__all__ = ["UsageError", "port"]


class UsageError(Exception):
    """A bad option value: printed with the usage hint, exit code 2."""


def port(text: str) -> int:
    """An argparse type: a TCP port, 0..65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0: any free one), got {value}")
    return value
