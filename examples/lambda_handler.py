"""Example AWS Lambda handler: the client lives across warm invocations, and every
invocation flushes before it returns (Lambda freezes the process right after).

Deploy with `lambda_handler.handler` as the handler; set SEGMENT_WRITE_KEY.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from segment_client import Client
from segment_client.integrations.aws_lambda import flush_after


def build_handler(client: Client) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    @flush_after(client)  # bounded by context.get_remaining_time_in_millis() - 0.5 s
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        client.track(
            event["userId"],
            "Order Completed",
            {"orderId": event["orderId"], "revenue": event.get("revenue", 0)},
            context={"requestId": getattr(context, "aws_request_id", None)},
        )
        return {"statusCode": 200}

    return handler


# Module level: built once per execution environment, reused while it stays warm.
handler = build_handler(
    Client(
        os.environ.get("SEGMENT_WRITE_KEY", "example-write-key"),
        host=os.environ.get("SEGMENT_HOST", "http://127.0.0.1:8787"),
    )
)
