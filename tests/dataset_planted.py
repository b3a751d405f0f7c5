"""A planted mixture for dataset-builder tests: pictures, a search server, a test embedder.

* :func:`planted_catalogue` makes ``n`` search results: 60 % pictures of the subject (warm red
  scenes), 25 % of a look-alike subject (ochre scenes, same kind of layout), 15 % junk (blurred,
  tiny, exact and near duplicates, HTML pages, truncated JPEGs, a 404), each with its truth.
* :class:`PlantedNaver` is :class:`tests.fake_naver.FakeNaver` (the same API, paging, errors
  and quotas) whose result links serve that catalogue; it counts every picture request.
* :class:`PlantedEmbedder` (``planted:<dim>``) embeds a picture as its hue signature (a smooth
  hue histogram through a fixed projection) plus the ``fake`` colour-layout vector, so distinct
  pictures of one subject are close but never identical, and the two subjects are apart. It
  maps the subject words to the hue signature of their colour (like CLIP maps "cat" near cat
  pictures) and counts the pictures it embeds, so tests can prove nothing is embedded twice.
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from clipatlas.embedders.base import l2_normalize
from clipatlas.embedders.fake import FakeEmbedder
from clipatlas.registry import Registry, default_registry
from clipatlas.settings import Settings
from tests.fake_naver import FakeNaver, _Handler

__all__ = [
    "LOOKALIKE_RGB",
    "SUBJECT_RGB",
    "Planted",
    "PlantedEmbedder",
    "PlantedNaver",
    "mixture",
    "planted_catalogue",
    "planted_registry",
    "planted_settings",
    "scene",
]

SUBJECT_RGB = (200, 70, 60)
LOOKALIKE_RGB = (185, 160, 60)
WORDS = {"고양이": SUBJECT_RGB, "cat": SUBJECT_RGB, "호랑이": LOOKALIKE_RGB}
_BINS = 36


def scene(seed: int, base: tuple[int, int, int], size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A sharp, distinct picture around colour ``base``: gradient, noise, outlined shapes."""
    rng = np.random.default_rng(seed)
    w, h = size
    centre = np.asarray(base, np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.arange(w)[None, :] * np.cos(angle) / w + np.arange(h)[:, None] * np.sin(angle) / h
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    c0, c1 = centre + rng.uniform(-40, 40, 3), centre + rng.uniform(-40, 40, 3)
    pixels = c0 + (c1 - c0) * ramp[..., None] + rng.integers(-12, 13, (h, w, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(5, 10))):
        x0, x1 = sorted(rng.integers(0, w, 2).tolist())
        y0, y1 = sorted(rng.integers(0, h, 2).tolist())
        colour = tuple(int(v) for v in np.clip(centre + rng.uniform(-45, 45, 3), 0, 255))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1 + 2, y1 + 2), fill=colour, outline=(0, 0, 0))
    return image


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Planted:
    """One search result: what it serves and what it truly is."""

    kind: str  # subject | lookalike | blurred | tiny | duplicate | near_duplicate | html | ...
    body: bytes
    content_type: str = "image/jpeg"
    status: int = 200
    expected_reason: str | None = None  # why the builder must drop it (None: subject/lookalike)


_HTML = b"<!DOCTYPE html><html><head><title>Moved</title></head><body>gone</body></html>"


def screenshot(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A sharp app/web screenshot: light page, a coloured title bar, lines of dark "text"."""
    rng = np.random.default_rng(seed)
    w, h = size
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(232, 250, 3)))
    draw = ImageDraw.Draw(image)
    bar = tuple(int(v) for v in rng.integers(40, 120, 3))
    draw.rectangle((0, 0, w, 34), fill=bar)
    y = 48
    while y < h - 12:
        x = 16
        while x < w - 40:
            word = int(rng.integers(12, 60))
            draw.rectangle((x, y, min(x + word, w - 16), y + 7), fill=(40, 40, 48))
            x += word + int(rng.integers(6, 12))
        y += int(rng.integers(16, 24))
    return image


def planted_catalogue(n: int = 100, seed: int = 7) -> list[Planted]:
    """``n`` results in a shuffled order (60 % subject, 25 % look-alike, 15 % junk)."""
    n_subject, n_look = round(n * 0.60), round(n * 0.25)
    return mixture(n_subject, n_look, 0, n - n_subject - n_look, seed)


def mixture(
    subject: int, lookalike: int, screenshots: int, junk: int, seed: int = 7
) -> list[Planted]:
    """Shuffled results: pictures of the subject, of a look-alike, screenshots, and junk."""
    pictures = [scene(seed * 1000 + i, SUBJECT_RGB) for i in range(subject)]
    # a few subject pictures are PNGs: the export must re-encode them as JPEG
    out = [Planted("subject", png(p) if i % 10 == 3 else jpeg(p)) for i, p in enumerate(pictures)]
    out += [
        Planted("lookalike", jpeg(scene(seed * 1000 + 500 + i, LOOKALIKE_RGB)))
        for i in range(lookalike)
    ]
    out += [
        Planted("screenshot", png(screenshot(seed * 1000 + 800 + i))) for i in range(screenshots)
    ]
    junk_makers = [
        lambda i: Planted("blurred", jpeg(scene(90_000 + i, SUBJECT_RGB)
                          .filter(ImageFilter.GaussianBlur(4))), expected_reason="blurry"),
        lambda i: Planted("tiny", jpeg(scene(91_000 + i, SUBJECT_RGB, (160, 120))),
                          expected_reason="too_small"),
        lambda i: Planted("duplicate", out[i % subject].body, expected_reason="duplicate"),
        lambda i: Planted("near_duplicate", jpeg(pictures[(i + 5) % subject]
                          .resize((432, 324), Image.Resampling.LANCZOS), 80),
                          expected_reason="near_duplicate"),
        lambda i: Planted("html", _HTML, "text/html; charset=utf-8",
                          expected_reason="not_an_image"),
        lambda i: Planted("corrupt", jpeg(scene(92_000 + i, SUBJECT_RGB))[:3000],
                          expected_reason="truncated"),
        lambda i: Planted("missing", b"not found", "text/plain", 404, "http_error"),
    ]  # fmt: skip
    out += [junk_makers[i % len(junk_makers)](i) for i in range(junk)]
    order = np.random.default_rng(seed).permutation(len(out))
    return [out[i] for i in order]


class _PlantedHandler(_Handler):
    def _image(self, path: str) -> None:
        server = self.server
        owner: PlantedNaver = server.owner  # type: ignore[attr-defined]
        stem = path.rstrip("/").rsplit("/", 1)[-1].split(".")[0]
        with server.state.lock:
            server.state.image_hits[path] += 1
            granted = owner.hold_after is None or owner.granted < owner.hold_after
            owner.granted += granted
        if not granted:  # held: answered only once the test releases it
            owner.release.wait(120)
        time.sleep(owner.picture_delay)
        catalogue: list[Planted] = server.planted  # type: ignore[attr-defined]
        n = int(stem) if stem.isdigit() else 0
        if not 1 <= n <= len(catalogue):
            self._send(404, b"no such picture", "text/plain")
            return
        item = catalogue[n - 1]
        try:
            self._send(item.status, item.body, item.content_type)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client is gone (a killed build): nothing was delivered
        with server.state.lock:
            owner.served[path] += 1


class PlantedNaver(FakeNaver):
    """Fake Naver image search whose results (rank n) serve ``catalogue[n - 1]``, for
    ``query`` and every word of ``also`` (each word its own URLs). ``hold_after=N`` answers
    the first N picture requests and holds every later one until :attr:`release` is set;
    ``picture_delay`` seconds pass before each picture is answered (a slow image host);
    ``served`` counts the pictures actually sent, per path."""

    def __init__(
        self,
        catalogue: Sequence[Planted],
        query: str,
        *,
        also: Sequence[str] = (),
        hold_after: int | None = None,
        picture_delay: float = 0.0,
        **kwargs: object,
    ) -> None:
        totals = {word: len(catalogue) for word in (query, *also)}
        super().__init__(totals=totals, **kwargs)  # type: ignore[arg-type]
        self._server.RequestHandlerClass = _PlantedHandler
        self._server.planted = list(catalogue)  # type: ignore[attr-defined]
        self._server.owner = self  # type: ignore[attr-defined]
        self.hold_after, self.granted = hold_after, 0
        self.picture_delay = picture_delay
        self.release = threading.Event()
        self.served: Counter[str] = Counter()

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        super().__exit__(*exc)

    @property
    def picture_requests(self) -> int:
        with self.state.lock:
            return sum(n for path, n in self.state.image_hits.items() if path.startswith("/img/"))


class PlantedEmbedder(FakeEmbedder):
    """``planted:<dim>``: hue signature + colour layout (see the module docstring)."""

    lock = threading.Lock()
    embedded = 0  # pictures embedded, over every instance (tests reset it)

    def __init__(self, dim: int = 64) -> None:
        super().__init__(dim)
        self.id = f"planted:{dim}"
        self._hue_proj = np.random.default_rng(4321).standard_normal((_BINS, dim))
        self._hue_proj = self._hue_proj.astype(np.float32)

    def _hue_signature(self, rgb: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, dim): a smooth saturation-weighted hue histogram."""
        x = rgb.astype(np.float32) / 255.0
        mx, mn = x.max(axis=-1), x.min(axis=-1)
        sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
        r, g, b = x[..., 0], x[..., 1], x[..., 2]
        hue = np.arctan2(np.sqrt(3.0) * (g - b), 2 * r - g - b)  # -pi..pi
        centres = np.linspace(-np.pi, np.pi, _BINS, endpoint=False)
        diff = np.angle(np.exp(1j * (hue[..., None] - centres)))
        weights = np.exp(-((diff / 0.15) ** 2)) * sat[..., None]
        hist = weights.reshape(len(x), -1, _BINS).sum(axis=1)
        return l2_normalize(l2_normalize(hist) @ self._hue_proj)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        with PlantedEmbedder.lock:
            PlantedEmbedder.embedded += len(pixels)
        layout = super().embed_pixels(pixels)
        return l2_normalize(self._hue_signature(np.asarray(pixels)) + layout)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = super().embed_texts(texts)
        for row, text in enumerate(texts):
            rgb = next((c for word, c in WORDS.items() if word in text.lower()), None)
            if rgb is not None:
                solid = np.empty((1, 8, 8, 3), np.uint8)
                solid[...] = rgb
                out[row] = l2_normalize(1.6 * self._hue_signature(solid) + 0.3 * out[row])[0]
        return out


def planted_registry() -> Registry:
    registry = default_registry(with_entry_points=False)
    registry.add_embedder("planted", lambda arg, settings: PlantedEmbedder(int(arg or 64)))
    return registry


def planted_settings(home: object, naver: FakeNaver, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": home, "model": "planted:64", "workers": -1, "batch_size": 16,
        "allow_hosts": ["127.0.0.1"], "naver_base_url": naver.api_url,
        "naver_client_id": naver.state.client_id,
        "naver_client_secret": naver.state.client_secret, "fetch_retries": 1,
    }  # fmt: skip
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
