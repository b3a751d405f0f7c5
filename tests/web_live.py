"""A live web app for browser tests: uvicorn on 127.0.0.1 in a thread, plus an in-process
job worker thread (its kinds may include test-only ones)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from clipatlas.jobs import JobKinds, Worker
from clipatlas.settings import Settings
from clipatlas.web.app import create_app
from clipatlas.web.config import WebConfig

CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveApp:
    def __init__(self, settings: Settings, kinds: JobKinds, *, worker: bool = True) -> None:
        self.port = free_port()
        app = create_app(settings, WebConfig.build(port=self.port, workers=0), kinds=kinds)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", ws="none"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.worker = Worker(settings, kinds=kinds, poll=0.05, heartbeat=0.1) if worker else None
        self.worker_thread = (
            threading.Thread(target=self.worker.run, daemon=True) if worker else None
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveApp:
        self.thread.start()
        if self.worker_thread:
            self.worker_thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.worker:
            self.worker.stop()
            assert self.worker_thread is not None
            self.worker_thread.join(10)
        self.server.should_exit = True
        self.thread.join(10)
