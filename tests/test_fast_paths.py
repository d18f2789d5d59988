"""The optimised hot-path pieces keep their contracts."""

from __future__ import annotations

import uuid

from segment_client._messages import new_message_id


def test_message_ids_are_distinct_uuid4_text() -> None:
    ids = [new_message_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
