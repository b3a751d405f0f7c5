"""A local stand-in for the Naver Search API (image), per specs/external-apis.md section 2.

Listens on 127.0.0.1 only (random port). ``GET /v1/search/image`` (and ``image.json``) checks
the credential headers (names configurable), validates ``query``/``display``/``start``/
``sort``/``filter`` exactly as the spec lists (SE01..SE06, string ``errorCode``s), and pages by
``start`` over a deterministic catalogue: ``total`` can be huge while items exist only up to
``start=1000`` (+display). Titles carry ``<b>`` tags and entities; ``sizeheight``/``sizewidth``
are strings; every ``link`` points at ``/img/...`` on this server, which serves a real small
JPEG, and thumbnails at ``/thumb/...``.

Faults are scriptable: :meth:`FakeNaver.fail_next` queues error modes for the next API
requests; ``daily_quota`` is a per-client-id counter (429 ``010``); ``burst`` limits requests
per rolling second (429 ``012``); ``errors_as_200`` serves error bodies with status 200.
Every API request is recorded in ``requests`` (path, params, headers).
"""

from __future__ import annotations

import io
import json
import threading
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote_to_bytes, urlsplit

from PIL import Image

from tests.local_server import LoopbackServer

__all__ = ["ERRORS", "FakeNaver", "Recorded", "tiny_jpeg"]

_KST = timezone(timedelta(hours=9))
MAX_AVAILABLE = 1099  # start <= 1000, display <= 100

# mode -> (HTTP status, errorCode, errorMessage)
ERRORS: dict[str, tuple[int, str, str]] = {
    "SE01": (400, "SE01", "Incorrect query request (잘못된 쿼리요청입니다.)"),
    "SE02": (400, "SE02", "Invalid display value (부적절한 display 값입니다.)"),
    "SE03": (400, "SE03", "Invalid start value (부적절한 start 값입니다.)"),
    "SE04": (400, "SE04", "Invalid sort value (부적절한 sort 값입니다.)"),
    "SE05": (404, "SE05", "Invalid search api (존재하지 않는 검색 api 입니다.)"),
    "SE06": (400, "SE06", "Malformed encoding (잘못된 형식의 인코딩입니다.)"),
    "SE99": (500, "SE99", "System Error (시스템 에러)"),
    "auth_id": (
        401,
        "024",
        "Not Exist Client ID : Authentication failed. (인증에 실패했습니다.)",
    ),
    "auth_secret": (
        401,
        "024",
        "NID AUTH Result Invalid (1000) : Authentication failed. (인증에 실패했습니다.)",
    ),
    "auth_scope": (
        401,
        "024",
        "Scope Status Invalid : Authentication failed. (인증에 실패했습니다.)",
    ),
    "daily": (429, "010", "Query limit exceeded. (쿼리 한도를 초과했습니다.)"),
    "per_second": (429, "012", "Rate limit exceeded. (속도 제한을 초과했습니다.)"),
}


def tiny_jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    color = ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256)
    Image.new("RGB", (32, 24), color).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


@dataclass
class Recorded:
    path: str
    params: dict[str, str]
    headers: dict[str, str]  # lower-case names


@dataclass
class _State:
    client_id: str
    client_secret: str
    id_header: str
    secret_header: str
    total: int
    totals: dict[str, int]
    daily_quota: int | None
    burst: int | None
    errors_as_200: bool
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Recorded] = field(default_factory=list)
    queued: deque[str] = field(default_factory=deque)
    daily_used: Counter[str] = field(default_factory=Counter)
    recent: deque[float] = field(default_factory=deque)
    image_hits: Counter[str] = field(default_factory=Counter)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.send_header("Server", "nginx")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json;charset=utf-8")

    def _error(self, mode: str, prefix: str = "") -> None:
        status, code, message = ERRORS[mode]
        if self.server.state.errors_as_200:
            status = 200
        self._json(status, {"errorMessage": prefix + message, "errorCode": code})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith(("/img/", "/thumb/")):
            self._image(parts.path)
            return
        st = self.server.state
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            raw = parse_qs(parts.query, encoding="utf-8", errors="strict")
            params = {k: v[-1] for k, v in raw.items()}
            bad_encoding = False
        except UnicodeDecodeError:
            raw_bytes = parse_qs(parts.query, encoding="latin-1")
            params = {k: v[-1] for k, v in raw_bytes.items()}
            bad_encoding = True
        with st.lock:
            st.requests.append(Recorded(parts.path, params, headers))
            forced = st.queued.popleft() if st.queued else None
        if parts.path not in ("/v1/search/image", "/v1/search/image.json"):
            self._error("SE05")
            return
        client_id = headers.get(st.id_header.lower())
        if client_id != st.client_id:
            self._error("auth_id")
            return
        if headers.get(st.secret_header.lower()) != st.client_secret:
            self._error("auth_secret")
            return
        if forced is not None:
            self._error(forced)
            return
        if self._over_quota(client_id):
            return
        self._search(params, bad_encoding or _has_invalid_utf8(parts.query))

    def _over_quota(self, client_id: str) -> bool:
        st = self.server.state
        with st.lock:
            now = time.monotonic()
            if st.burst is not None:
                while st.recent and now - st.recent[0] > 1.0:
                    st.recent.popleft()
                if len(st.recent) >= st.burst:
                    burst_hit = True
                else:
                    st.recent.append(now)
                    burst_hit = False
            else:
                burst_hit = False
            if not burst_hit:
                st.daily_used[client_id] += 1
            used = st.daily_used[client_id]
        if burst_hit:
            self._error("per_second")
            return True
        if st.daily_quota is not None and used > st.daily_quota:
            self._error("daily", prefix=f"{{count/quota={used}/{st.daily_quota}}} : ")
            return True
        return False

    def _search(self, params: dict[str, str], bad_encoding: bool) -> None:
        st = self.server.state
        query = params.get("query", "")
        if bad_encoding:
            self._error("SE06")
            return
        if not query.strip():
            self._error("SE01")
            return
        display, start = _int(params.get("display", "10")), _int(params.get("start", "1"))
        if display is None or not 1 <= display <= 100:
            self._error("SE02")
            return
        if start is None or not 1 <= start <= 1000:
            self._error("SE03")
            return
        sort = params.get("sort", "sim")
        if sort not in ("sim", "date"):
            self._error("SE04")
            return
        if params.get("filter", "all") not in ("all", "large", "medium", "small"):
            self._error("SE01")  # the spec leaves this unconfirmed; SE01 is the likely answer
            return
        total = st.totals.get(query, st.total)
        available = min(total, MAX_AVAILABLE)
        last = min(start + display - 1, available)
        ranks = range(start, last + 1)
        items = [self._item(query, rank, sort, available) for rank in ranks]
        self._json(
            200,
            {
                "lastBuildDate": datetime.now(_KST).strftime("%a, %d %b %Y %H:%M:%S %z"),
                "total": total,
                "start": start,
                "display": len(items),
                "items": items,
            },
        )

    def _item(self, query: str, rank: int, sort: str, available: int) -> dict[str, str]:
        n = available - rank + 1 if sort == "date" else rank
        tag = zlib.crc32(query.encode("utf-8")) & 0xFFFF
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        link = f"{host}/img/{tag}/{n}.jpg"
        return {
            "title": f"<b>{query}</b> photo {n} &amp; friends &quot;{n}&quot;",
            "link": link,
            "thumbnail": f"{host}/thumb/?src={quote(link, safe='')}&type=b150",
            "sizeheight": str(24 + n % 7),
            "sizewidth": str(32 + n % 5),
        }

    def _image(self, path: str) -> None:
        with self.server.state.lock:
            self.server.state.image_hits[path] += 1
        stem = path.rstrip("/").rsplit("/", 1)[-1].split(".")[0]
        seed = int(stem) if stem.isdigit() else 0
        self._send(200, tiny_jpeg(seed), "image/jpeg")


def _int(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.lstrip("-").isdigit() else None


def _has_invalid_utf8(query_string: str) -> bool:
    for pair in query_string.split("&"):
        if pair.startswith("query="):
            try:
                unquote_to_bytes(pair[6:].replace("+", " ")).decode("utf-8")
            except UnicodeDecodeError:
                return True
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class FakeNaver(LoopbackServer):
    """``with FakeNaver(daily_quota=3) as naver: naver.api_url``."""

    def __init__(
        self,
        *,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        id_header: str = "X-Naver-Client-Id",
        secret_header: str = "X-Naver-Client-Secret",
        total: int = 1_843_920,
        totals: dict[str, int] | None = None,
        daily_quota: int | None = None,
        burst: int | None = None,
        errors_as_200: bool = False,
    ) -> None:
        self.state = _State(
            client_id, client_secret, id_header, secret_header, total,
            dict(totals or {}), daily_quota, burst, errors_as_200,
        )  # fmt: skip
        super().__init__(_Server(self.state))

    @property
    def url(self) -> str:
        return self.origin

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1/search/image"

    @property
    def requests(self) -> list[Recorded]:
        with self.state.lock:
            return list(self.state.requests)

    def fail_next(self, mode: str, times: int = 1) -> None:
        """The next ``times`` authenticated API requests answer with error ``mode``."""
        if mode not in ERRORS:
            raise ValueError(f"unknown error mode {mode!r}")
        with self.state.lock:
            self.state.queued.extend([mode] * times)
