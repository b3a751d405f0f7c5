"""A fake CivitAI REST API v1 and image CDN on 127.0.0.1, for the civitai source tests.

Serves ``/api/v1/models``, ``/api/v1/models/{id}``, ``/api/v1/model-versions/{id}`` and
``/api/v1/images`` from a seeded in-memory catalogue, with the quirks of the real API
(/work/shared/specs/external-apis.md §1): opaque cursors of several formats (one page sends a
JSON number), short pages that still carry ``nextCursor``, one empty page mid-walk, both
metadata keys absent on the last page, ``nextPage`` naming civitai.com, a null ``nextCursor``
with a usable ``nextPage`` on ``/images`` (bug #981), nulls and missing keys, int-or-string
NSFW levels, pruned ``/models/:id`` versions with id-less images, wrapped ``{id, meta}``.

Images live under ``/images-cdn/<hash>/<uuid>/<options>/<name>.jpeg`` and are real JPEGs (some
originals are PNG bytes under the ``.jpeg`` name, one is corrupt). Faults are scripted per route
with :meth:`FakeCivitai.inject`; every request is recorded in :attr:`FakeCivitai.requests`.
"""

from __future__ import annotations

import io
import json
import random
import threading
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from PIL import Image

from tests.local_server import LoopbackServer

__all__ = ["FakeCivitai", "FakeImage", "FakeModel", "FakeVersion", "Recorded"]

ACCOUNT = "xG1nkqKTMzGDvpLrqFT7WA"
LEVEL_NAMES = {1: "None", 2: "Soft", 4: "Mature", 8: "X", 16: "X"}
FAULTS = ("429", "429-retry-after", "503", "500", "html-200", "html-403", "json-error", "404")
MAINTENANCE = b"<html><body>We're adjusting a few things, be back in a few minutes</body></html>"
CHALLENGE = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    b"<script src='/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1'></script></body></html>"
)


@dataclass
class FakeImage:
    id: int
    uuid: str
    model_id: int
    version_id: int
    username: str | None
    base_model: str
    level: int
    width: int | None
    height: int | None
    meta: dict[str, Any] | None
    legacy_url: bool = False  # width=450 (old previews) instead of original=true
    no_url: bool = False
    no_id: bool = False
    png_original: bool = False
    corrupt: bool = False


@dataclass
class FakeVersion:
    id: int
    name: str
    base_model: str
    images: list[FakeImage] = field(default_factory=list)


@dataclass
class FakeModel:
    id: int
    name: str
    type: str
    tags: list[str]
    creator: str | None
    versions: list[FakeVersion]
    hidden: bool = False  # never listed (no visible published version)
    index: int = 0


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


def _catalogue(seed: int, loras: int, others: int) -> list[FakeModel]:
    rng = random.Random(seed)
    models: list[FakeModel] = []
    next_version, next_image = 50_000, 700_000
    for index in range(loras + others):
        kind = "LORA" if index < loras else "Checkpoint"
        model_id = 1000 + index * 7
        creator = None if index % 6 == 0 else f"maker{index % 5}"
        versions = []
        for v in range(rng.randint(1, 5) if index != 8 else 0):  # model 8 has no versions
            base = rng.choice(["SDXL 1.0", "Pony", "Illustrious", "SD 1.5"])
            version = FakeVersion(next_version, f"v{v + 1}.0", base)
            next_version += 1
            for _ in range(rng.randint(0, 6)):
                n = next_image - 700_000
                meta = None if n % 4 == 0 else {
                    "prompt": f"picture {next_image}, watercolor", "negativePrompt": "lowres",
                    "seed": rng.randint(0, 2**32), "steps": rng.choice([20, "28"]),
                    "sampler": "Euler a", "cfgScale": 6.5, "resources": [],
                }  # fmt: skip
                version.images.append(FakeImage(
                    next_image, str(uuid.UUID(int=rng.getrandbits(128))), model_id, version.id,
                    creator, base, rng.choice([1, 1, 1, 2, 4, 8, 16]),
                    None if n % 9 == 4 else 512, None if n % 9 == 4 else 768, meta,
                    legacy_url=index % 7 == 3, no_url=n % 17 == 3, no_id=n % 13 == 2,
                    png_original=n % 5 == 1, corrupt=n == 11,
                ))  # fmt: skip
                next_image += 1
            versions.append(version)
        tags = ["style", f"tag{index % 4}"] if index % 5 else []
        models.append(
            FakeModel(model_id, f"Model {index}", kind, tags, creator, versions,
                      hidden=index % 11 == 5, index=index)
        )  # fmt: skip
    return models


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: Any, **headers: str) -> None:
        data = json.dumps(body).encode()
        self._send(status, data, "application/json; charset=utf-8", **headers)

    def do_POST(self) -> None:
        self._record("POST")
        self._json(405, {"error": "Method not allowed"})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        self._record("GET")
        segments = [s for s in parts.path.split("/") if s]
        fake = self.server.fake
        if segments[:1] == ["images-cdn"] and len(segments) == 5:
            if not self._fault("cdn"):
                self._cdn(segments)
            return
        if segments[:2] != ["api", "v1"] or len(segments) < 3:
            self._json(404, {"error": "Not found"})
            return
        route = {"models": "models", "model-versions": "version", "images": "images"}.get(
            segments[2], ""
        )
        if route == "models" and len(segments) == 4:
            route = "model"
        if not route or self._fault(route):
            if not route:
                self._json(404, {"error": "Not found"})
            return
        try:
            if route == "models":
                self._json(200, fake.models_page(query))
            elif route == "images":
                self._json(200, fake.images_page(query))
            elif route == "model":
                found = fake.model_detail(int(segments[3]))
                if found is None:
                    self._json(404, {"error": f"No model with id {segments[3]}"})
                else:
                    self._json(200, found)
            else:
                found = fake.version_detail(int(segments[3]))
                if found is None:
                    self._json(404, {"error": "Model not found"})
                else:
                    self._json(200, found)
        except ValueError as exc:
            self._json(400, {"error": str(exc)})

    def _record(self, method: str) -> None:
        parts = urlsplit(self.path)
        entry = Recorded(
            method,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
        )
        with self.server.fake.lock:
            self.server.fake.requests.append(entry)

    def _fault(self, route: str) -> bool:
        fake = self.server.fake
        with fake.lock:
            queue = fake.faults[route]
            fault = queue.popleft() if queue else None
        if fault is None:
            return False
        if fault == "429":
            self._send(429, b"<html><body>Too Many Requests</body></html>", "text/html")
        elif fault == "429-retry-after":
            self._json(429, {"error": "Rate limited"}, Retry_After=fake.retry_after)
        elif fault == "503":
            body = {"error": "Server busy, please retry shortly."}
            self._json(503, body, Retry_After=fake.retry_after, Cache_Control="no-store")
        elif fault == "500":
            self._json(500, {"message": "An unexpected error occurred", "error": "boom"})
        elif fault == "html-200":
            self._send(200, MAINTENANCE, "text/html; charset=utf-8")
        elif fault == "html-403":
            self._send(403, CHALLENGE, "text/html; charset=UTF-8")
        elif fault == "json-error":
            self._json(200, {"error": "Something went wrong"})
        elif fault == "404":
            self._json(404, {"error": "No model with id 1"})
        elif fault in ("png", "corrupt"):
            data = fake.png_bytes() if fault == "png" else b"\xff\xd8\xff\xe0garbage" * 8
            self._send(200, data, "image/jpeg")
        return True

    def _cdn(self, segments: list[str]) -> None:
        fake = self.server.fake
        image = fake.by_uuid.get(segments[2])
        if image is None:
            self._send(404, b"Not Found", "text/plain")
            return
        options = dict(o.split("=", 1) for o in segments[3].split(",") if "=" in o)
        if image.corrupt:
            self._send(200, b"\xff\xd8\xff\xe0" + b"\x00garbage" * 32, "image/jpeg")
        elif image.png_original and options.get("original") == "true":
            self._send(200, fake.png_bytes(image.id), "image/jpeg")  # PNG under a .jpeg name
        else:
            width = int(options.get("width", "64") or 64)
            self._send(200, fake.jpeg_bytes(min(max(width, 8), 96), image.id), "image/jpeg")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeCivitai) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class FakeCivitai(LoopbackServer):
    """``with FakeCivitai() as fake: fake.base_url`` -> ``http://127.0.0.1:<port>/api/v1``."""

    def __init__(
        self, *, seed: int = 7, loras: int = 40, others: int = 6, retry_after: str = "0"
    ) -> None:
        self.models = _catalogue(seed, loras, others)
        self.by_uuid = {i.uuid: i for m in self.models for v in m.versions for i in v.images}
        self.retry_after = retry_after
        self.lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.faults: defaultdict[str, deque[str]] = defaultdict(deque)
        self._cursors: dict[str, tuple[int, int]] = {}  # token -> (offset, page number)
        self._issued = 0
        super().__init__(_Server(self))

    # -- lifecycle and test helpers --------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v1"

    def inject(self, route: str, *faults: str) -> None:
        """Script the next responses of ``route`` (models, model, version, images, cdn)."""
        with self.lock:
            self.faults[route].extend(faults)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()

    def api_requests(self, path_part: str = "/api/v1/") -> list[Recorded]:
        return [r for r in self.requests if path_part in r.path]

    def image_url(self, image: FakeImage, *, gallery: bool = False) -> str:
        options = "width=450" if image.legacy_url else "original=true"
        name = image.uuid if gallery else str(image.id)
        return f"{self.origin}/images-cdn/{ACCOUNT}/{image.uuid}/{options}/{name}.jpeg"

    def listed(self, types: tuple[str, ...] = ("LORA",), nsfw: bool = False) -> list[FakeImage]:
        """The images a complete walk of ``/models`` should offer (previews, every version)."""
        return [
            i for m in self.models if m.type in types and not m.hidden and m.index != 9
            for v in m.versions for i in v.images
            if not i.no_url and (nsfw or i.level == 1)
        ]  # fmt: skip

    def gallery(self, *, nsfw: str | None = None, **filters: Any) -> list[FakeImage]:
        """The images ``/images`` serves for these filters (model_id, version_id, username)."""
        ceiling = {None: 1, "false": 1, "None": 1, "Soft": 3, "Mature": 7, "X": 31}.get(nsfw, 31)
        out = []
        for model in self.models:
            if model.hidden:
                continue
            for version in model.versions:
                for image in version.images:
                    if image.no_url or image.level > ceiling:
                        continue
                    if nsfw == "true" and image.level < 4:
                        continue
                    if filters.get("model_id") not in (None, model.id):
                        continue
                    if filters.get("version_id") not in (None, version.id):
                        continue
                    if filters.get("username") not in (None, image.username):
                        continue
                    out.append(image)
        return out

    @staticmethod
    def _picture(size: tuple[int, int], seed: int) -> Image.Image:
        """A distinct picture per image id, like real previews (so none is a duplicate)."""
        rng = random.Random(seed)
        picture = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
        for _ in range(6):
            x, y = rng.randrange(size[0]), rng.randrange(size[1])
            box = (x, y, x + rng.randrange(4, 24), y + rng.randrange(4, 24))
            picture.paste(tuple(rng.randrange(256) for _ in range(3)), box)
        return picture

    def jpeg_bytes(self, width: int, seed: int = 0) -> bytes:
        buf = io.BytesIO()
        self._picture((width, width * 3 // 2), seed).save(buf, format="JPEG")
        return buf.getvalue()

    def png_bytes(self, seed: int = 0) -> bytes:
        buf = io.BytesIO()
        self._picture((48, 64), seed).save(buf, format="PNG")
        return buf.getvalue()

    # -- pagination ------------------------------------------------------------------------

    def _issue(self, offset: int, page_no: int) -> str | int:
        with self.lock:
            self._issued += 1
            n = self._issued
        form = page_no % 4
        token: str | int
        if form == 0:
            token = f"{n * 31}|{n * 977}|{offset}"
        elif form == 1:
            token = f"2024-03-{1 + n % 28:02d}T21:35:22.{n % 1000:03d}Z"
        elif form == 2:
            token = 63_000 + n  # legacy: a JSON number
        else:
            token = "bdx:" + json.dumps({"n": n})
        with self.lock:
            self._cursors[str(token)] = (offset, page_no)
        return token

    def _window(self, query: dict[str, list[str]], rows: list[Any], cap: int, path: str) -> Any:
        limit = int(query.get("limit", [str(cap)])[-1])
        if not 0 < limit <= cap:
            raise ValueError(f"limit must be between 1 and {cap}")
        cursor = query.get("cursor", [None])[-1]
        offset, page_no = 0, 0
        if cursor is not None:
            if cursor not in self._cursors:
                raise ValueError(f"invalid cursor {cursor!r}")
            offset, page_no = self._cursors[cursor]
        if page_no == 1 and offset > 0 and cursor is not None and not cursor.startswith("again:"):
            token = "again:" + uuid.uuid4().hex  # one empty page before the end
            with self.lock:
                self._cursors[token] = (offset, page_no + 1)
            return [], {"nextCursor": token, "nextPage": self._next_page(path, query, token)}
        size = max(1, limit - page_no % 3)  # short pages, still with a cursor
        chunk = rows[offset : offset + size]
        if offset + size >= len(rows):
            return chunk, {}
        issued = self._issue(offset + size, page_no + 1)
        return chunk, {"nextCursor": issued, "nextPage": self._next_page(path, query, issued)}

    @staticmethod
    def _next_page(path: str, query: dict[str, list[str]], token: str | int) -> str:
        echoed = {k: v for k, v in query.items() if k != "cursor"} | {"cursor": [str(token)]}
        return f"https://civitai.com/api/v1/{path}?{urlencode(echoed, doseq=True)}"

    # -- shapes ----------------------------------------------------------------------------

    def models_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        types = query.get("types", [])
        known = {"LORA", "LoCon", "Checkpoint", "TextualInversion", "DoRA"}
        if any(t not in known for t in types):
            raise ValueError("Invalid enum value for types")
        nsfw = query.get("nsfw", ["false"])[-1] == "true"
        rows = [m for m in self.models if not types or m.type in types]
        if query.get("sort", [""])[-1] == "Newest":
            rows = sorted(rows, key=lambda m: -m.id)
        chunk, metadata = self._window(query, rows, 100, "models")
        items = [self._model(m, nsfw) for m in chunk if not m.hidden]
        return {"items": items, "metadata": metadata}

    def images_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        def one(name: str) -> str | None:
            return query.get(name, [None])[-1]

        model_id, version_id = one("modelId"), one("modelVersionId")
        rows = self.gallery(
            nsfw=one("nsfw"),
            model_id=int(model_id) if model_id else None,
            version_id=int(version_id) if version_id else None,
            username=one("username"),
        )
        newest = one("sort") == "Newest"
        rows = sorted(rows, key=lambda i: -i.id if newest else i.id)
        chunk, metadata = self._window(query, rows, 200, "images")
        if metadata and not newest and metadata.get("nextCursor") is not None:
            metadata["nextCursor"] = None  # bug #981: nextPage still works
        wrap = bool(model_id) and not version_id
        with_meta = one("withMeta") == "true"
        items = [self._gallery_item(i, with_meta, wrap) for i in chunk]
        return {"items": items, "metadata": metadata}

    def _preview(self, image: FakeImage, *, detail: bool) -> dict[str, Any]:
        n = image.id - 700_000
        out: dict[str, Any] = {
            "id": image.id, "url": self.image_url(image), "nsfwLevel": image.level,
            "width": image.width, "height": image.height,
            "hash": None if n % 3 == 0 else "U9Eo^tM{00~q00Rj", "type": "image",
            "hasMeta": image.meta is not None, "onSite": False, "remixOfId": None,
        }  # fmt: skip
        if image.legacy_url:  # old shape: string level and the nsfw flag as a name
            out["nsfwLevel"] = LEVEL_NAMES[image.level]
            out["nsfw"] = LEVEL_NAMES[image.level]
        if image.no_url:
            del out["url"]
        if image.no_id or detail:
            del out["id"]
        if detail:
            out["meta"] = image.meta
            out["metadata"] = {"size": 1402231, "width": image.width, "height": image.height}
        return out

    def _version(self, version: FakeVersion, nsfw: bool, detail: bool) -> dict[str, Any]:
        images = [self._preview(i, detail=detail) for i in version.images if nsfw or i.level == 1]
        out: dict[str, Any] = {
            "id": version.id, "name": version.name, "baseModel": version.base_model,
            "baseModelType": None, "description": None, "trainedWords": [],
            "nsfwLevel": 3, "stats": {"downloadCount": None, "thumbsUpCount": 3},
            "files": [{"id": version.id, "name": "w.safetensors", "primary": True}],
            "images": images,
            "downloadUrl": f"https://civitai.com/api/download/models/{version.id}",
        }  # fmt: skip
        if version.id % 4 == 1 and not images:
            out["images"] = None
        if detail:  # /models/:id prunes nulls and empty arrays
            out["createdAt"] = "2025-03-14T08:55:12.004Z"
            out = {k: v for k, v in out.items() if v is not None and v != []}
        return out

    def _model(self, model: FakeModel, nsfw: bool, detail: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": model.id, "name": model.name, "type": model.type,
            "description": None if model.index % 4 == 0 else "<p>A model</p>",
            "nsfw": False, "nsfwLevel": 31 if nsfw else 1, "tags": model.tags,
            "allowCommercialUse": ["Image", "RentCivit"] if model.index % 2 else "{Image,Sell}",
            "stats": {"downloadCount": None if model.index % 3 == 0 else 10, "thumbsUpCount": 1},
            "modelVersions": [self._version(v, nsfw, detail) for v in model.versions],
        }  # fmt: skip
        if model.creator is not None:
            out["creator"] = {"username": model.creator, "image": None}
        if model.index == 9:
            out["modelVersions"] = None
        return out

    def model_detail(self, model_id: int) -> dict[str, Any] | None:
        for model in self.models:
            if model.id == model_id and not model.hidden:
                return self._model(model, True, detail=True)
        return None

    def version_detail(self, version_id: int) -> dict[str, Any] | None:
        for model in self.models:
            for version in model.versions:
                if version.id == version_id and not model.hidden:
                    out = self._version(version, True, detail=True)
                    out["images"] = out.get("images", [])[:10]
                    out["modelId"] = model.id
                    out["model"] = {"name": model.name, "type": model.type, "nsfw": False}
                    return out
        return None

    def _gallery_item(self, image: FakeImage, with_meta: bool, wrap: bool) -> dict[str, Any]:
        meta: Any = image.meta if with_meta else None
        if meta is not None and wrap:
            meta = {"id": image.id, "meta": meta}
        out: dict[str, Any] = {
            "id": image.id, "url": self.image_url(image, gallery=True),
            "hash": None, "width": image.width, "height": image.height,
            "nsfwLevel": LEVEL_NAMES[image.level], "nsfw": image.level > 1,
            "browsingLevel": image.level, "type": "image",
            "createdAt": "2025-05-02T11:48:03.512Z", "postId": None,
            "stats": {"likeCount": 1}, "meta": meta, "username": image.username,
            "baseModel": image.base_model, "modelVersionIds": [image.version_id],
        }  # fmt: skip
        if image.no_id:
            out["id"] = None
        return out
