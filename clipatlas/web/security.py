"""The one gate every request passes: Host allow-list, token, write token, body cap, headers.

* ``Host`` must be in the allow-list (stops DNS rebinding against a loopback server).
* With a token configured (always, for non-loopback binds) every route needs it: the
  ``X-Clipatlas-Token`` header, ``Authorization: Bearer``, or the cookie set by ``/login``.
  Only ``/login`` and ``/static/`` (the app's own CSS/JS) are open.
* State-changing methods need the write token in the header, never only a cookie, so a
  cross-site form cannot post; pages embed it for their own scripts.
* Bodies above the cap are refused before any parsing: by ``Content-Length`` at once, and by
  counting the streamed bytes otherwise.
* Every response gets ``nosniff``, ``X-Frame-Options: SAMEORIGIN``, ``Referrer-Policy``, and a
  strict Content-Security-Policy unless the route set its own. No CORS headers are ever sent.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

from clipatlas.web.config import TOKEN_COOKIE, TOKEN_HEADER, WebConfig

__all__ = ["DEFAULT_CSP", "Guard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
_SAFE_METHODS = {"GET", "HEAD"}
_OPEN_PREFIXES = ("/static/",)
_OPEN_PATHS = {"/login"}


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    def __init__(self, app: ASGIApp, config: WebConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET").upper()
        if _host_name(headers.get("host", "")) not in self.config.allowed_hosts:
            await _json(send, 400, "bad_host", "this Host header is not allowed")
            return
        sent = headers.get(TOKEN_HEADER.lower())
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            sent = sent or auth[7:].strip()
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header counts as none
            cookie = SimpleCookie()
        cookie_token = cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None
        open_route = path in _OPEN_PATHS or path.startswith(_OPEN_PREFIXES)
        token = self.config.token
        if token and not open_route and not (_same(sent, token) or _same(cookie_token, token)):
            if method in _SAFE_METHODS and "text/html" in headers.get("accept", ""):
                await _redirect(send, "/login")
            else:
                await _json(send, 401, "unauthorized", f"send the token in {TOKEN_HEADER}")
            return
        writes = method not in _SAFE_METHODS and path not in _OPEN_PATHS
        if writes and not _same(sent, self.config.write_token):
            await _json(
                send,
                403,
                "write_token_required",
                f"state-changing requests need the {TOKEN_HEADER} header",
            )
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.config.max_body):
            await _json(
                send,
                413,
                "too_large",
                f"request bodies are limited to {self.config.max_body} bytes",
            )
            return
        await self._guarded(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = refused = False
        limit = self.config.max_body

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # answer now; the app sees the client go away
                    if not started:
                        await _json(
                            send, 413, "too_large", f"request bodies are limited to {limit} bytes"
                        )
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        async def secure_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out already
            if message["type"] == "http.response.start":
                started = True
                raw = list(message.get("headers", []))
                names = {k.lower() for k, _ in raw}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"SAMEORIGIN"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", DEFAULT_CSP.encode()),
                ]
                raw += [(k, v) for k, v in extra if k not in names]
                message["headers"] = raw
            await send(message)

        try:
            await self.app(scope, counting_receive, secure_send)
        except Exception:
            if not refused:
                raise  # a real error; a refused body's disconnect errors are expected


async def _json(send: Send, status: int, error: str, detail: str) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
