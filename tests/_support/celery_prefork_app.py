"""The example worker wired for the prefork test: filesystem broker, file sink client."""

from __future__ import annotations

import os

import celery_worker
from celery_worker import app

from segment_client import Client
from tests._support.sigterm_child import FileSink

BASE = os.environ["SEGMENT_TEST_DIR"]
app.conf.update(
    broker_url="filesystem://",
    broker_transport_options={
        "data_folder_in": os.path.join(BASE, "broker"),
        "data_folder_out": os.path.join(BASE, "broker"),
        "processed_folder": os.path.join(BASE, "processed"),
        # Fanout exchange tables (kombu's default: ./control, in the working tree).
        "control_folder": os.path.join(BASE, "control"),
    },
    result_backend="file://" + os.path.join(BASE, "results"),
    broker_connection_retry_on_startup=True,
)


class PidSink(FileSink):
    """Records, with each message, the pid of the process that delivered it."""

    def send(  # type: ignore[override]
        self, batch: list[bytes], *, retry_count: int = 0, timeout: float | None = None
    ) -> None:
        pid = str(os.getpid()).encode()
        super().send([data[:-1] + b',"_deliveredBy":' + pid + b"}" for data in batch])


def make_client() -> Client:
    return Client("k", transport=PidSink(os.path.join(BASE, "sink.jsonl")), flush_interval=3600)


celery_worker.make_client = make_client
