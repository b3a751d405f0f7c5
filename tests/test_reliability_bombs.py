"""Bombs rejected fast and small; a golden set of odd pictures equal to hand-made references.

Each bomb is decoded in a fresh worker process (tests/reliability_worker.py) with no memory
cap, so the peak RSS measured is what the decoder really took: it must stay under 512 MB and
the answer come within 2 s. The figures are in docs/reliability.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from clipatlas.images import BACKGROUND, analyse_bytes
from tests.corpus import encode, huge_screen_gif_bytes, png_bomb_bytes, textured_picture
from tests.reliability_bombs import (
    gif_frame_outside_screen_bytes,
    many_frame_gif_bytes,
    tiff_chain_bytes,
    tiff_deflate_bomb_bytes,
)
from tests.reliability_figures import record
from tests.reliability_fuzz import IsolatedDecoder
from tests.test_images_normalise import _stored_for

SECONDS = 2.0
PEAK_MB = 512

BOMBS: dict[str, Callable[[], bytes]] = {
    "png-canvas-50000x50000": lambda: png_bomb_bytes(50_000),
    "gif-logical-screen-65535x65535": huge_screen_gif_bytes,
    "gif-first-frame-at-60000,60000": gif_frame_outside_screen_bytes,
    "tiff-chain-50000-pages-of-50000x50000-looping": tiff_chain_bytes,
    "tiff-deflate-60000x60000": tiff_deflate_bomb_bytes,
}


@pytest.fixture(scope="module")
def decoder() -> Iterator[IsolatedDecoder]:
    with IsolatedDecoder(memory_limit=0, timeout=30.0) as running:
        yield running


@pytest.mark.parametrize("name", BOMBS)
def test_a_decompression_bomb_is_too_large_within_2_s_and_512_mb(
    name: str, decoder: IsolatedDecoder
) -> None:
    data = BOMBS[name]()
    outcome = decoder.decode(0, data, fresh=True)
    record("bomb", name=name, bytes=len(data), outcome=outcome.detail, seconds=outcome.seconds,
           peak_rss_mb=round(outcome.peak_rss_kb / 1024, 1))  # fmt: skip
    assert (outcome.kind, outcome.detail) == ("typed", "too_large")
    assert outcome.seconds < SECONDS
    assert outcome.peak_rss_kb / 1024 < PEAK_MB


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (lambda: many_frame_gif_bytes(100_000, 4_000), (4_000, 4_000)),
        (lambda: tiff_chain_bytes(50_000, 50_000, first_side=64), (64, 64)),
    ],
    ids=["gif-100000-frames-of-4000x4000", "tiff-chain-small-first-page-then-50000x50000"],
)
def test_pages_after_the_first_are_never_decoded_so_frame_bombs_stay_bounded(
    data: Callable[[], bytes], size: tuple[int, int], decoder: IsolatedDecoder
) -> None:
    """Only the first frame/page is ever read (DESIGN.md), so a file whose frames together
    hold terapixels costs what its first frame costs."""
    payload = data()
    outcome = decoder.decode(0, payload, fresh=True)
    record("bomb", name=f"first frame only: {size}", bytes=len(payload), outcome=outcome.detail,
           seconds=outcome.seconds, peak_rss_mb=round(outcome.peak_rss_kb / 1024, 1))  # fmt: skip
    assert outcome.kind == "picture"
    assert outcome.detail.endswith(f"{size[0]}x{size[1]}")
    assert outcome.seconds < SECONDS
    assert outcome.peak_rss_kb / 1024 < PEAK_MB


# -- golden set: the same pixels as a reference normalised by hand --------------------------

SHOWN = np.asarray(textured_picture(2001, (40, 24)))  # what a viewer must show


def _palette_picture(seed: int, colours: int = 8) -> tuple[Image.Image, NDArray[np.uint8]]:
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, colours, (24, 40), dtype=np.uint8)
    palette = rng.integers(0, 256, (colours, 3), dtype=np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.tobytes())
    return image, palette


def _oriented(orientation: int) -> tuple[bytes, NDArray[np.uint8]]:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = Image.fromarray(np.ascontiguousarray(_stored_for(orientation, SHOWN)))
    return encode(stored, "WEBP", lossless=True, exif=exif), SHOWN


def _cmyk() -> tuple[bytes, NDArray[np.uint8]]:
    cmyk = np.random.default_rng(2002).integers(0, 256, (24, 40, 4), dtype=np.uint8)
    c = cmyk.astype(np.float64)
    rgb = np.rint((255 - c[..., :3]) * (255 - c[..., 3:]) / 255)  # un-inked paper is white
    return encode(Image.fromarray(cmyk, "CMYK"), "TIFF"), rgb.astype(np.uint8)


def _palette_transparency() -> tuple[bytes, NDArray[np.uint8]]:
    image, palette = _palette_picture(2003)
    alpha = np.array([0, 64, 128, 255, 255, 200, 10, 255], dtype=np.float64)
    indices = np.asarray(image)
    a = (alpha[indices] / 255)[..., None]
    rgb = palette[indices] * a + np.asarray(BACKGROUND) * (1 - a)
    return encode(image, "PNG", transparency=alpha.astype(np.uint8).tobytes()), np.rint(rgb).astype(
        np.uint8
    )


def _grey_alpha() -> tuple[bytes, NDArray[np.uint8]]:
    rng = np.random.default_rng(2004)
    la = rng.integers(0, 256, (24, 40, 2), dtype=np.uint8)
    grey, a = la[..., 0].astype(np.float64), la[..., 1].astype(np.float64) / 255
    rgb = np.repeat((grey * a + 255 * (1 - a))[..., None], 3, axis=-1)
    return encode(Image.fromarray(la, "LA"), "PNG"), np.rint(rgb).astype(np.uint8)


def _ramp16(fmt: str) -> tuple[bytes, NDArray[np.uint8]]:
    ramp = np.tile(np.linspace(0, 65535, 1024).round().astype(np.uint16), (16, 1))
    rgb = np.repeat(np.rint(ramp / 257.0)[..., None], 3, axis=-1)
    return encode(Image.fromarray(ramp), fmt), rgb.astype(np.uint8)


def _animated_gif() -> tuple[bytes, NDArray[np.uint8]]:
    frames = [_palette_picture(2005 + i) for i in range(3)]
    images = [image for image, _ in frames]
    data = encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=60)
    return data, frames[0][1][np.asarray(images[0])]


def _animated_webp() -> tuple[bytes, NDArray[np.uint8]]:
    rng = np.random.default_rng(2008)
    frames = [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(3)]
    images = [Image.fromarray(f) for f in frames]
    data = encode(images[0], "WEBP", lossless=True, save_all=True, append_images=images[1:])
    return data, frames[0]


# name -> (bytes and reference, largest difference allowed in any channel of any pixel)
GOLDEN: dict[str, tuple[Callable[[], tuple[bytes, NDArray[np.uint8]]], int]] = {
    **{f"exif-orientation-{o}-webp": (lambda o=o: _oriented(o), 0) for o in range(1, 9)},
    "cmyk-tiff": (_cmyk, 0),
    "palette-with-alpha-table-png": (_palette_transparency, 1),
    "grey-alpha-png": (_grey_alpha, 1),
    "grey16-ramp-png": (lambda: _ramp16("PNG"), 0),
    "grey16-ramp-tiff": (lambda: _ramp16("TIFF"), 0),
    "animated-gif-first-frame": (_animated_gif, 0),
    "animated-webp-first-frame": (_animated_webp, 0),
}


@pytest.mark.parametrize("name", GOLDEN)
def test_the_golden_set_decodes_to_the_hand_normalised_reference(name: str) -> None:
    build, tolerance = GOLDEN[name]
    data, reference = build()
    picture = analyse_bytes(data, name)
    pixels = np.asarray(picture.image)
    assert picture.image.mode == "RGB"
    assert pixels.shape == reference.shape
    worst = int(np.abs(pixels.astype(np.int16) - reference.astype(np.int16)).max())
    record("golden", name=name, max_difference=worst, tolerance=tolerance)
    assert worst <= tolerance
