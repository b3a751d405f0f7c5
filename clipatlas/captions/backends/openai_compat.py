"""``openai-compatible:<model>``: any server speaking the OpenAI chat-completions API with
images (vLLM, Ollama, LM Studio, llama.cpp server, OpenAI).

The picture goes inline as a JPEG ``data:`` URL (longest side ``Settings.caption_image_side``)
in one user message with the prompt. Requests run a few at a time on threads, each with a
connect timeout and a total timeout, retried on connection failures, 429 and 5xx (honouring
``Retry-After``, capped) with jittered backoff. Redirects are refused: a redirected POST
would carry the API key somewhere else.

The base URL is the user's own configuration (usually a model server on localhost), not a
URL taken from data, so it does not go through the SSRF-guarded fetcher, which would refuse
localhost; see docs/captioning.md. The API key is sent only as a bearer header and is
scrubbed from every error message.
"""

from __future__ import annotations

import base64
import io
import json
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from PIL import Image

from clipatlas.captions.backends.base import CaptionRequest, clean_caption
from clipatlas.errors import CaptionBackendError, ConfigError
from clipatlas.fetch.redact import redact, scrub
from clipatlas.settings import Settings

__all__ = ["OpenAICompatibleModel", "create", "image_data_url"]

KIND = "openai-compatible"
_RETRY_STATUS = {429, 500, 502, 503, 504}
_MAX_WAIT = 30.0


def image_data_url(image: Image.Image, max_side: int) -> str:
    """The picture as a ``data:image/jpeg;base64,...`` URL, longest side at most ``max_side``."""
    picture = image.convert("RGB")
    if max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _text_of(content: Any) -> Any:
    """Message content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return " ".join(p for p in parts if isinstance(p, str)) if parts else content
    return content


class OpenAICompatibleModel:
    """Captions from a chat-completions endpoint."""

    def __init__(self, model: str, settings: Settings, *, concurrency: int = 4) -> None:
        if not model:
            raise ConfigError("openai-compatible needs a model name: openai-compatible:<model>")
        self.model = model
        self.id = f"{KIND}:{model}"
        self.batch_size = concurrency
        self.url = settings.caption_base_url.rstrip("/") + "/chat/completions"
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"caption base URL must be http(s): {settings.caption_base_url!r}")
        key = settings.caption_api_key.get_secret_value() if settings.caption_api_key else None
        self._secrets = tuple(s for s in (key,) if s)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.retries = settings.caption_retries
        self.max_tokens = settings.caption_max_tokens
        self.temperature = settings.caption_temperature
        self.image_side = settings.caption_image_side
        timeout = httpx.Timeout(settings.caption_timeout, connect=settings.caption_connect_timeout)
        self._client = httpx.Client(timeout=timeout, headers=headers, follow_redirects=False)
        self._pool = ThreadPoolExecutor(max_workers=concurrency)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _where(self) -> str:
        return redact(self.url, self._secrets)

    def _body(self, request: CaptionRequest) -> dict[str, Any]:
        url = image_data_url(request.image, self.image_side)
        return {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": request.prompt},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": False,
        }

    def _fail(self, name: str, reason: str, detail: str) -> CaptionBackendError:
        return CaptionBackendError(name, reason, scrub(detail, self._secrets))

    def _post(self, request: CaptionRequest) -> str | CaptionBackendError:
        body = self._body(request)
        attempt = 0
        while True:
            wait = min(_MAX_WAIT, 0.5 * 2**attempt) * (0.5 + random.random() / 2)
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                error = self._fail(request.name, "timeout", f"{self._where()}: {exc}")
            except httpx.HTTPError as exc:
                error = self._fail(
                    request.name, "unreachable", f"{self._where()}: {type(exc).__name__}: {exc}"
                )
            else:
                if response.status_code in _RETRY_STATUS:
                    error = self._fail(
                        request.name,
                        "http_error",
                        f"{self._where()} answered {response.status_code}: {response.text[:200]}",
                    )
                    retry_after = response.headers.get("retry-after", "")
                    if retry_after.strip().isdigit():
                        wait = min(_MAX_WAIT, float(retry_after))
                else:
                    return self._parse(request.name, response)
            if attempt >= self.retries:
                return error
            attempt += 1
            time.sleep(wait)

    def _parse(self, name: str, response: httpx.Response) -> str | CaptionBackendError:
        if response.status_code != 200:
            return self._fail(
                name,
                "http_error",
                f"{self._where()} answered {response.status_code}: {response.text[:200]}",
            )
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            return self._fail(
                name, "bad_response", f"not a chat completion ({exc!r}): {response.text[:200]}"
            )
        return clean_caption(name, _text_of(content))

    def caption(self, requests: Sequence[CaptionRequest]) -> list[str | CaptionBackendError]:
        return list(self._pool.map(self._post, requests))


def create(arg: str, settings: Settings) -> OpenAICompatibleModel:
    return OpenAICompatibleModel(arg, settings)
