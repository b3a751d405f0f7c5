"""Helpers for tests/test_reliability_web.py: a live app with any config, raw HTTP requests
(paths sent byte for byte, no client-side normalisation), the path-traversal payloads, and a
home whose items carry stored-XSS attempts in a URL, an EXIF field, a caption and a file name."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from PIL import Image

from clipatlas.atlas import Atlas
from clipatlas.settings import Settings
from clipatlas.web.app import create_app
from clipatlas.web.config import WebConfig
from tests.web_helpers import write_colour_folder
from tests.web_live import free_port

CANARY = "clipatlas-canary-7f3a9c1e-outside-the-media-root"


class Live:
    """``create_app(settings, config)`` served by uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, settings: Settings, config: WebConfig) -> None:
        self.port = config.port
        self.app = create_app(settings, config)
        cfg = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="critical", ws="none"
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Live:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def live_config(**kw: Any) -> WebConfig:
    return WebConfig.build(port=free_port(), workers=0, **kw)


class Raw:
    """HTTP/1.1 over one keep-alive socket; the request target is sent exactly as given."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            self.buf = b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _read_until(self, sep: bytes) -> bytes:
        assert self.sock is not None
        while sep not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        head, self.buf = self.buf.split(sep, 1)
        return head

    def _read_n(self, n: int) -> bytes:
        assert self.sock is not None
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data: bytes) -> None:
        self._connect().sendall(data)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                body += self._read_n(size)
                self._read_until(b"\r\n")
                if size == 0:
                    break
        else:
            body = self._read_n(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def get(self, target: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        request = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra.encode()
        for attempt in range(2):  # a server may close a keep-alive socket after an error
            try:
                self.send(request + b"\r\n")
                status, _, body = self.response()
                return status, body
            except (ConnectionError, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")


# -- path traversal ------------------------------------------------------------------------------


def _encodings(seg: str) -> list[str]:
    """One traversal step ``..`` + separator, written in many ways."""
    dots = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%252e%252e", "..%00", "%c0%ae%c0%ae",
            "\uff0e\uff0e", "\u2024\u2024", "....", ".. "]  # fmt: skip
    seps = ["/", "%2f", "%2F", "%252f", "\\", "%5c", "%c0%af", "//", "/./", "\u2215", "\uff0f"]
    return [d + s for d in dots for s in seps] if seg == "step" else []


def traversal_payloads(relative_to_canary: list[str], n: int = 500) -> list[str]:
    """``n`` distinct payloads (as text; :func:`target` percent-encodes what must be)."""
    out: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        if p not in seen and len(out) < n:
            seen.add(p)
            out.append(p)

    for rel in relative_to_canary:  # the exact way up to the planted canary, several spellings
        add(rel)
        add(rel.replace("../", "%2e%2e/"))
        add(rel.replace("/", "%2f"))
        add(rel.replace("../", "..\\"))
        add(rel.replace("../", "%2e%2e%5c"))
        add(rel.replace("../", "....//"))
        add(rel.replace("/", "%252f").replace("..", "%252e%252e"))
        add(rel + "%00.png")
    absolute = ["/etc/passwd", "/etc/passwd%00.png", "C:\\Windows\\win.ini", "C:/Windows/win.ini",
                "\\\\server\\share\\x", "file:///etc/passwd", "//etc/passwd", "/proc/self/environ",
                "%2fetc%2fpasswd", "%252fetc%252fpasswd", "\\etc\\passwd"]  # fmt: skip
    for a in absolute:
        add(a)
    steps = _encodings("step")
    for depth in (1, 2, 3, 4, 6, 8, 12):
        for s in steps:
            for tail in ("etc/passwd", "canary.txt", "catalog.db", "home/canary.txt"):
                add(s * depth + tail)
    for length in (255, 256, 1024, 4096, 16384):  # long names
        add("a" * length)
        add("../" * (length // 3))
    i = 0
    while len(out) < n:  # filler: numeric-looking and odd ids
        add(
            ["-1", "0", "1e9", "99999999999999999999", "1.5", "%20", "..", ".", "~", "$HOME"][
                i % 10
            ]
            + "/" * (i // 10)
        )
        i += 1
    return out


def target(template: str, payload: str) -> bytes:
    """The request target: ``{p}`` replaced by the payload; non-ASCII, controls and spaces
    percent-encoded (as a browser would), everything else sent raw."""
    safe = "".join(chr(c) for c in range(0x21, 0x7F))
    return template.replace("{p}", quote(payload, safe=safe)).encode("ascii")


def plant_canaries(root: Path, settings: Settings) -> list[Path]:
    """The canary text in files outside the media root and static folder, at several levels."""
    places = [root / "canary.txt", settings.home / "canary.txt", root.parent / "canary.txt"]
    for p in places:
        p.write_text(CANARY + "\n")
    return places


# -- stored XSS ------------------------------------------------------------------------------------


def xss(tag: str) -> str:
    """A payload that sets ``window.__xss`` (and opens a dialog) if it ever runs as markup
    (no ``/``: it must fit in a file name)."""
    return f"\"'><img src=x onerror=window.__xss='{tag}';alert('{tag}')><svg onload=alert(1)>"


def exif_picture(description: str, rgb: tuple[int, int, int]) -> bytes:
    img = Image.new("RGB", (64, 48), rgb)
    exif = Image.Exif()
    exif[0x010E] = description  # ImageDescription
    exif[0x010F] = description  # Make
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def build_xss_home(root: Path, settings: Settings, url_origin: str) -> dict[str, str]:
    """A collection ``xss`` with one payload per vector; returns vector -> payload."""
    payloads = {v: xss(v) for v in ("url", "exif", "caption", "filename")}
    pics = root / "xss-pics"
    write_colour_folder(pics, per_colour=2)
    name = payloads["filename"].replace("/", "") + ".png"
    Image.new("RGB", (64, 48), (10, 120, 200)).save(pics / name)
    (pics / "described.jpg").write_bytes(exif_picture(payloads["exif"], (200, 120, 10)))
    caps = root / "xss-caps"
    (caps / "pics").mkdir(parents=True)
    Image.new("RGB", (64, 48), (90, 90, 20)).save(caps / "pics" / "captioned.png")
    row = {"file_name": "pics/captioned.png", "captions": [payloads["caption"]]}
    (caps / "data.jsonl").write_text(json.dumps(row) + "\n")
    urls = root / "urls.txt"
    payloads["url"] = "\"'><svg/onload=window.__xss='url';alert('url')>"  # no spaces in a URL
    urls.write_text(f"{url_origin}/img/7.png#{payloads['url']}\n")  # stored, never sent
    with Atlas.open("xss", settings=settings) as atlas:
        atlas.ingest(pics)
        atlas.ingest(atlas.source("urls", path=urls))
        atlas.import_captions(caps / "data.jsonl")
        run = atlas.cluster("kmeans", k=3)
        atlas.map(run.id)
        payloads["run"] = str(run.id)
    return payloads
