"""Helpers shared by the jobs and web tests: small picture folders, a slow image server, and
waiting for a job to reach a status."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from clipatlas.jobs.model import Job
from tests.corpus import coloured_picture
from tests.local_server import LoopbackServer

COLOURS = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (230, 220, 30), (200, 40, 200)]


def write_colour_folder(dest: Path, per_colour: int = 4, seed: int = 0) -> list[Path]:
    """``per_colour`` distinct pictures of each of five colours (distinct sha256 each)."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for c, rgb in enumerate(COLOURS):
        for i in range(per_colour):
            shade = tuple(min(255, max(0, v + 3 * i + seed)) for v in rgb)
            path = dest / f"c{c}-{i:03d}-s{seed}.png"
            coloured_picture(shade, (48 + i, 40)).save(path)  # type: ignore[arg-type]
            paths.append(path)
    return paths


def wait_for(get: Callable[[], Job], pred: Callable[[Job], bool], timeout: float = 20.0) -> Job:
    deadline = time.monotonic() + timeout
    job = get()
    while not pred(job):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; job is {job.as_dict()}")
        time.sleep(0.02)
        job = get()
    return job


class SlowImageServer(LoopbackServer):
    """Serves ``/img/<n>.png`` (a distinct small PNG per n) after ``delay`` seconds each."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.hits = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.hits += 1
                time.sleep(outer.delay)
                n = int(self.path.rsplit("/", 1)[-1].split(".")[0])
                buf = io.BytesIO()
                rgb = (n * 37 % 256, n * 91 % 256, n * 53 % 256)
                coloured_picture(rgb, (40 + n % 7, 40)).save(buf, "PNG")
                body = buf.getvalue()
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    def urls(self, n: int) -> list[str]:
        return [f"{self.origin}/img/{i}.png" for i in range(n)]


# -- web app fixtures (import them into a test module to use them) ------------------------------

import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from clipatlas.atlas import Atlas  # noqa: E402
from clipatlas.settings import Settings  # noqa: E402
from clipatlas.web.app import create_app  # noqa: E402
from clipatlas.web.config import TOKEN_HEADER, WebConfig  # noqa: E402


def make_collection(settings: Settings, folder: Path, name: str = "photos") -> None:
    write_colour_folder(folder, per_colour=4)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with Atlas.open(name, settings=settings) as atlas:
        atlas.ingest(folder)


def client_for(settings: Settings, config: WebConfig | None = None, **kw: Any) -> TestClient:
    app = create_app(settings, config or WebConfig.build(workers=0), **kw)
    return TestClient(app, base_url="http://127.0.0.1")


def write_headers(client: TestClient) -> dict[str, str]:
    return {TOKEN_HEADER: client.app.state.clipatlas.config.write_token}  # type: ignore[attr-defined]


@pytest.fixture(name="web_settings")
def web_settings_fixture(settings: Settings, tmp_path: Path) -> Settings:
    make_collection(settings, tmp_path / "pics")
    return settings


@pytest.fixture(name="client")
def client_fixture(web_settings: Settings) -> Any:
    with client_for(web_settings) as c:
        yield c
