"""Pictures from outside the collection, decoded safely: a file, bytes, a URL (through the
safe fetcher) or the preview images of a CivitAI model, for classify and search.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from clipatlas.errors import CivitaiError, FetchError, ImageError, Reason
from clipatlas.images import ImageLimits, decode_image

if TYPE_CHECKING:
    from clipatlas.engine import Engine

__all__ = ["Probe", "civitai_model_pictures", "picture_from", "url_picture"]


@dataclass
class Probe:
    """Decoded pictures of one thing, their names, what they are, and what failed."""

    pictures: list[Image.Image]
    names: list[str]
    subject: dict[str, Any]
    failed: list[dict[str, str]] = field(default_factory=list)


def _limits(engine: Engine) -> ImageLimits:
    return ImageLimits(
        max_pixels=engine.settings.max_pixels, min_side=1, max_bytes=engine.settings.max_file_bytes
    )


def picture_from(
    engine: Engine, image: str | os.PathLike[str] | bytes | Image.Image
) -> Image.Image:
    """A picture from a path, raw bytes or a PIL image; :class:`ImageError` otherwise."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    name = "<bytes>" if isinstance(image, bytes) else str(image)
    if isinstance(image, bytes):
        data = image
    else:
        try:
            data = Path(image).expanduser().read_bytes()
        except OSError as exc:
            raise ImageError(name, Reason.UNREADABLE, exc.strerror or str(exc)) from exc
    return decode_image(data, name, _limits(engine)).image


def url_picture(engine: Engine, url: str) -> Image.Image:
    """A picture fetched through the collection's safe fetcher (:class:`FetchError` else)."""
    result = engine.fetcher().get(url, expect="image")
    return decode_image(result.data, result.url, _limits(engine)).image


def civitai_model_pictures(engine: Engine, model_id: int, *, images: int = 8) -> Probe:
    """Up to ``images`` preview pictures of CivitAI model ``model_id`` (all its versions).

    An unknown id raises :class:`CivitaiError` saying so; previews that fail to download or
    decode are listed in ``failed``; none usable at all is a :class:`CivitaiError` too.
    """
    source = engine.source("civitai", mode="model", model_id=int(model_id), limit=images,
                          images_per_version=images)  # fmt: skip
    try:
        candidates = list(source.iter_candidates())
    except CivitaiError as exc:
        if exc.status == 404:
            raise CivitaiError(f"there is no CivitAI model with id {model_id}", 404) from None
        raise
    first = candidates[0].meta if candidates else {}
    subject = {
        "civitai_model": int(model_id),
        "model_name": first.get("model_name"),
        "model_type": first.get("model_type"),
        "tags": first.get("tags", []),
    }
    probe = Probe([], [], subject)
    by_url = {c.uri: c for c in candidates}
    for url, outcome in engine.fetcher().fetch_many(list(by_url), concurrency=4):
        key = by_url[url].key
        if isinstance(outcome, FetchError):
            probe.failed.append({"input": key, "reason": outcome.reason.value})
            continue
        try:
            probe.pictures.append(decode_image(outcome.data, key, _limits(engine)).image)
            probe.names.append(key)
        except ImageError as exc:
            probe.failed.append({"input": key, "reason": exc.reason.value})
    if not probe.pictures:
        why = "it lists no preview images" if not candidates else "no preview image could be used"
        raise CivitaiError(f"CivitAI model {model_id}: {why} ({len(probe.failed)} failed)")
    return probe
