"""A local stand-in for an OpenAI-compatible chat-completions server with vision
(what vLLM, Ollama, LM Studio, llama.cpp server and OpenAI speak).

``POST /v1/chat/completions`` checks the request the way a real server would: JSON body,
``model`` must be the served model (else 404 ``model_not_found``), one user message whose
content holds a text part (the prompt) and an ``image_url`` part whose URL is a base64
``data:image/...`` URL that decodes to a picture (else 400), and the bearer key when one is
set (else 401). Every accepted request is recorded (model, prompt, decoded picture, headers).

Answers come from ``answer(prompt, picture)``; the default describes the picture's dominant
colour and, when the prompt lists neighbours' captions ("- (0.93) caption" lines), borrows the
first one's words, like a model that follows its examples. Faults are scriptable:
``fail_next`` queues modes for the next requests: ``"503"`` (with Retry-After: 0), ``"500"``,
``"empty"`` (content ""), ``"null"`` (content null), ``"image_part"`` (content is a list
without text), ``"not_json"`` (an HTML page with status 200).
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image

from tests.local_server import LoopbackServer

__all__ = ["FakeOpenAI", "Received", "colour_name", "follow_examples"]

_EXAMPLE = re.compile(r"^- \((?P<score>-?[0-9.]+)\) (?P<caption>.+)$", re.MULTILINE)
_COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "white": (245, 245, 245),
    "black": (10, 10, 10),
}


def colour_name(picture: Image.Image) -> str:
    mean = np.asarray(picture.convert("RGB"), np.float32).reshape(-1, 3).mean(axis=0)
    return min(_COLOURS, key=lambda c: float(np.sum((mean - np.asarray(_COLOURS[c])) ** 2)))


def follow_examples(prompt: str, picture: Image.Image) -> str:
    """A model that follows its examples: the first neighbour caption's words, or a plain
    description of the picture's colour when the prompt has no examples."""
    found = _EXAMPLE.search(prompt)
    if found:
        return found["caption"]
    return f"a {colour_name(picture)} picture"


@dataclass
class Received:
    model: str
    prompt: str
    picture: Image.Image
    data_url_type: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeOpenAI(LoopbackServer):
    def __init__(
        self,
        model: str = "tiny-vlm",
        *,
        api_key: str | None = None,
        answer: Callable[[str, Image.Image], str] = follow_examples,
    ) -> None:
        self.model, self.api_key, self.answer = model, api_key, answer
        self.received: list[Received] = []
        self.rejected: list[tuple[int, str]] = []
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def fail_next(self, *modes: str) -> None:
        with self._lock:
            self._faults.extend(modes)

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/html" if raw is not None else "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)

    def _error(self, h: BaseHTTPRequestHandler, status: int, message: str, code: str) -> None:
        with self._lock:
            self.rejected.append((status, message))
        self._send(
            h,
            status,
            {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        )

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        if h.path != "/v1/chat/completions":
            return self._error(h, 404, f"no route {h.path}", "not_found")
        if self.api_key and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(h, 401, "Incorrect API key provided", "invalid_api_key")
        try:
            body = json.loads(raw)
            model = body["model"]
            (message,) = body["messages"]
            assert message["role"] == "user"
            texts = [p["text"] for p in message["content"] if p["type"] == "text"]
            urls = [p["image_url"]["url"] for p in message["content"] if p["type"] == "image_url"]
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            return self._error(h, 400, f"malformed chat request: {exc!r}", "invalid_request")
        if model != self.model:
            return self._error(h, 404, f"The model `{model}` does not exist", "model_not_found")
        if len(texts) != 1 or len(urls) != 1:
            return self._error(h, 400, "expected one text part and one image", "invalid_request")
        found = re.match(r"^data:(image/[a-z]+);base64,(.+)$", urls[0], re.DOTALL)
        if found is None:
            return self._error(h, 400, "image_url must be a base64 data URL", "invalid_image")
        try:
            picture = Image.open(io.BytesIO(base64.b64decode(found[2], validate=True)))
            picture.load()
        except (ValueError, OSError) as exc:
            return self._error(h, 400, f"image does not decode: {exc}", "invalid_image")
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self.received.append(
                Received(model, texts[0], picture.convert("RGB"), found[1], headers, body)
            )
            fault = self._faults.popleft() if self._faults else None
        self._answer(h, fault, texts[0], picture)

    def _answer(
        self, h: BaseHTTPRequestHandler, fault: str | None, prompt: str, picture: Image.Image
    ) -> None:
        if fault in ("503", "500"):
            return self._send(
                h, int(fault), {"error": {"message": "overloaded"}}, headers={"Retry-After": "0"}
            )
        if fault == "not_json":
            return self._send(h, 200, None, raw=b"<html><body>Bad gateway</body></html>")
        content: Any = {
            "empty": "",
            "null": None,
            "image_part": [{"type": "image_url", "image_url": {"url": "x"}}],
        }.get(fault or "")
        if fault is None:
            content = self.answer(prompt, picture.convert("RGB"))
        self._send(
            h,
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
            },
        )
