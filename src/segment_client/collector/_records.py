"""One stored message as the collector's followers (warehouse, usage) read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Record", "reaches_segment"]


@dataclass(frozen=True)
class Record:
    """One stored message: its store row id, when it was received, the message.

    `duplicate`: its messageId was seen before. Segment dedupes, so followers skip it
    (loading it again could put an older identify's traits back into `users`).
    """

    row_id: int
    received_at: str
    message: Mapping[str, Any]
    duplicate: bool = False


def reaches_segment(message: Any) -> bool:
    """False when `integrations["Segment.io"]` is false: Segment never receives it."""
    integrations = message.get("integrations") if isinstance(message, Mapping) else None
    return not (isinstance(integrations, Mapping) and integrations.get("Segment.io") is False)
