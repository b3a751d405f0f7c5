from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from clipatlas.errors import ConfigError, ImageDecodeError, Reason
from clipatlas.images import ImageLimits, decode_image
from tests.corpus import (
    coloured_picture,
    encode,
    huge_screen_gif_bytes,
    png_bomb_bytes,
    textured_picture,
)

PICTURE = textured_picture(31, (120, 90))

FORMATS = [
    ("JPEG", {"quality": 90}),
    ("PNG", {}),
    ("WEBP", {"quality": 90}),
    ("GIF", {}),
    ("BMP", {}),
    ("TIFF", {}),
]


def _reason(data: bytes, limits: ImageLimits | None = None, **kwargs: object) -> Reason:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, "item", limits or ImageLimits(), **kwargs)  # type: ignore[arg-type]
    assert info.value.path == "item"
    return info.value.reason


@pytest.mark.parametrize(("fmt", "params"), FORMATS)
def test_every_allowed_format_decodes_to_a_loaded_rgb_picture(
    fmt: str, params: dict[str, object]
) -> None:
    decoded = decode_image(encode(PICTURE, fmt, **params), "x")
    assert (decoded.format, decoded.width, decoded.height) == (fmt, 120, 90)
    assert decoded.image.mode == "RGB" and decoded.image.size == (120, 90)
    assert type(decoded.image) is Image.Image  # detached from the file, not lazy
    diff = np.abs(np.asarray(decoded.image, np.int16) - np.asarray(PICTURE, np.int16))
    assert diff.mean() < 12


def test_a_file_larger_than_max_bytes_is_too_large() -> None:
    data = encode(PICTURE, "PNG")
    assert _reason(data, ImageLimits(max_bytes=len(data) - 1)) is Reason.TOO_LARGE
    assert decode_image(data, "x", ImageLimits(max_bytes=len(data))).width == 120


@pytest.mark.parametrize(("fmt", "params"), FORMATS)
def test_a_picture_over_the_pixel_budget_is_too_large_in_every_format(
    fmt: str, params: dict[str, object]
) -> None:
    data = encode(PICTURE, fmt, **params)
    assert _reason(data, ImageLimits(max_pixels=120 * 90 - 1)) is Reason.TOO_LARGE
    assert decode_image(data, "x", ImageLimits(max_pixels=120 * 90)).height == 90


def test_a_png_decompression_bomb_is_too_large_at_once_without_decoding() -> None:
    bomb = png_bomb_bytes(50_000)
    assert len(bomb) < 1_000_000
    assert struct.unpack(">II", bomb[16:24]) == (50_000, 50_000)
    started = time.perf_counter()
    assert _reason(bomb) is Reason.TOO_LARGE
    assert time.perf_counter() - started < 2.0


def test_the_bomb_is_a_real_png_whose_stream_inflates_to_the_declared_size() -> None:
    side = 5_000  # same construction, small enough to inflate in a test
    bomb = png_bomb_bytes(side)
    stream = bomb[33 + 8 : -12 - 4]
    assert len(zlib.decompress(stream)) == side * (1 + side // 8)
    decoded = decode_image(bomb, "x", ImageLimits(max_pixels=side * side))
    assert decoded.image.getextrema() == ((0, 0), (0, 0), (0, 0))


def test_a_gif_with_a_huge_logical_screen_is_too_large() -> None:
    assert _reason(huge_screen_gif_bytes()) is Reason.TOO_LARGE


def _webp_with_huge_canvas(extended: bool) -> bytes:
    """A real WebP whose header is patched to declare a 16384 x 16384 canvas."""
    exif = Image.Exif()
    exif[0x010E] = "forces the extended (VP8X) header"
    params: dict[str, object] = {"lossless": True, **({"exif": exif} if extended else {})}
    data = bytearray(encode(PICTURE.convert("RGBA"), "WEBP", **params))
    if extended:
        assert data[12:16] == b"VP8X"
        data[24:30] = (16383).to_bytes(3, "little") * 2
    else:
        assert data[12:16] == b"VP8L"
        bits = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
        data[21:25] = (bits | 16383 | 16383 << 14).to_bytes(4, "little")
    return bytes(data)


@pytest.mark.parametrize("extended", [True, False])
def test_a_webp_declaring_a_huge_canvas_is_too_large_before_libwebp_allocates_it(
    extended: bool,
) -> None:
    data = _webp_with_huge_canvas(extended)
    started = time.perf_counter()
    assert _reason(data) is Reason.TOO_LARGE
    assert time.perf_counter() - started < 0.5


def test_pillows_decompression_bomb_warning_becomes_too_large_without_changing_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)
    data = encode(PICTURE, "PNG")  # 10,800 pixels: over Pillow's limit, within ours
    assert _reason(data, ImageLimits(max_pixels=10**8)) is Reason.TOO_LARGE
    assert Image.MAX_IMAGE_PIXELS == 5_000


def test_decoding_leaves_pillows_global_limits_alone() -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    decode_image(encode(PICTURE, "JPEG"), "x")
    with pytest.raises(ImageDecodeError):
        decode_image(png_bomb_bytes(50_000), "x")
    assert (
        (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
        == before
        == (
            89_478_485,
            False,
        )
    )


@pytest.mark.parametrize("size", [(8, 8), (15, 400), (400, 15)])
def test_a_picture_with_a_side_below_min_side_is_too_small(size: tuple[int, int]) -> None:
    assert _reason(encode(coloured_picture((90, 90, 90), size), "PNG")) is Reason.TOO_SMALL


def test_a_picture_exactly_min_side_wide_is_kept() -> None:
    decoded = decode_image(encode(coloured_picture((90, 90, 90), (16, 16)), "PNG"), "x")
    assert decoded.image.size == (16, 16)
    assert decode_image(encode(PICTURE, "PNG"), "x", ImageLimits(min_side=90)).height == 90
    assert _reason(encode(PICTURE, "PNG"), ImageLimits(min_side=91)) is Reason.TOO_SMALL


TRUNCATABLE = [
    ("JPEG", {"quality": 90}),
    ("JPEG", {"progressive": True}),
    ("PNG", {}),
    ("WEBP", {"quality": 90}),
    ("WEBP", {"lossless": True}),
    ("BMP", {}),
    ("TIFF", {}),
    ("TIFF", {"compression": "tiff_lzw"}),
    ("TIFF", {"compression": "jpeg"}),
]


@pytest.mark.parametrize(("fmt", "params"), TRUNCATABLE)
@pytest.mark.parametrize("keep", [0.02, 0.3, 0.6, 0.95, -1])
def test_a_file_cut_short_is_truncated_and_never_decoded_partially(
    fmt: str, params: dict[str, object], keep: float
) -> None:
    data = encode(PICTURE, fmt, **params)
    end = len(data) - 1 if keep == -1 else max(8, int(len(data) * keep))
    assert _reason(data[:end]) is Reason.TRUNCATED


@pytest.mark.parametrize("keep", [0.02, 0.3, 0.6, 0.95])
def test_a_gif_cut_short_is_truncated(keep: float) -> None:
    data = encode(PICTURE.quantize(colors=64), "GIF")
    assert _reason(data[: max(8, int(len(data) * keep))]) is Reason.TRUNCATED


def test_a_png_missing_only_its_end_chunk_is_truncated() -> None:
    data = encode(PICTURE, "PNG")
    assert data.endswith(b"IEND\xaeB`\x82")
    assert _reason(data[:-12]) is Reason.TRUNCATED
    assert _reason(data[:-3]) is Reason.TRUNCATED


def test_trailing_bytes_after_a_complete_picture_are_tolerated() -> None:
    for fmt in ("JPEG", "PNG"):
        assert decode_image(encode(PICTURE, fmt) + b"\x00" * 100, "x").width == 120


def test_a_png_with_a_corrupt_header_checksum_is_a_decode_error() -> None:
    data = bytearray(encode(PICTURE, "PNG"))
    data[29] ^= 0xFF  # last byte of the IHDR CRC
    assert _reason(bytes(data)) is Reason.DECODE_ERROR


def test_a_jpeg_with_a_broken_huffman_table_is_a_decode_error() -> None:
    data = encode(PICTURE, "JPEG")
    dht = data.index(b"\xff\xc4")
    broken = data[: dht + 5] + b"\xff" * 16 + data[dht + 21 :]
    assert _reason(broken) is Reason.DECODE_ERROR


def test_a_jpeg_without_components_is_a_decode_error_with_a_stable_detail() -> None:
    data = bytearray(encode(PICTURE, "JPEG"))
    data[data.index(b"\xff\xc0") + 9] = 0  # number of components in the frame header
    with pytest.raises(ImageDecodeError) as info:
        decode_image(bytes(data), "x")
    assert (info.value.reason, info.value.detail) == (
        Reason.DECODE_ERROR,
        "Pillow cannot read this JPEG file",
    )


def test_an_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    decoded = decode_image(data, "x")
    assert decoded.image.getpixel((20, 15)) == (255, 0, 0)


def test_an_animated_webp_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (40, 30), c) for c in ((250, 250, 0), (0, 0, 250))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    pixel = decode_image(data, "x").image.getpixel((20, 15))
    assert isinstance(pixel, tuple)
    assert pixel[0] > 200 and pixel[2] < 50


def test_a_multi_page_tiff_gives_its_first_page() -> None:
    pages = [Image.new("RGB", (40, 30), c) for c in ((10, 200, 10), (200, 10, 10))]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert decode_image(data, "x").image.getpixel((5, 5)) == (10, 200, 10)


def test_a_camera_mpo_decodes_as_jpeg_with_its_first_picture() -> None:
    shots = [Image.new("RGB", (64, 48), c) for c in ((30, 180, 30), (180, 30, 30))]
    data = encode(shots[0], "MPO", save_all=True, append_images=shots[1:])
    decoded = decode_image(data, "x")
    assert decoded.format == "JPEG"
    pixel = decoded.image.getpixel((30, 20))
    assert isinstance(pixel, tuple) and pixel[1] > 150 and pixel[0] < 60


def test_a_draft_decode_of_a_jpeg_is_smaller_but_reports_the_full_size() -> None:
    data = encode(textured_picture(32, (768, 512)), "JPEG", quality=90)
    decoded = decode_image(data, "x", draft=(224, 224))
    assert (decoded.width, decoded.height) == (768, 512)
    assert decoded.image.size == (384, 256)
    full = decode_image(data, "x", draft=(768, 512))
    assert full.image.size == (768, 512)


def test_a_draft_never_goes_below_the_requested_size_even_for_a_rotated_jpeg() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    data = encode(textured_picture(33, (1600, 800)), "JPEG", exif=exif)
    decoded = decode_image(data, "x", draft=(200, 400))
    assert (decoded.width, decoded.height) == (800, 1600)
    assert decoded.image.size == (200, 400)  # 1/4 scale; without the swap it would be 1/2


def test_a_draft_is_ignored_for_formats_other_than_jpeg() -> None:
    data = encode(textured_picture(34, (768, 512)), "PNG")
    assert decode_image(data, "x", draft=(100, 100)).image.size == (768, 512)


def test_a_draft_that_is_not_positive_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        decode_image(encode(PICTURE, "JPEG"), "x", draft=(0, 10))


def test_image_limits_refuse_nonsense_values() -> None:
    with pytest.raises(ConfigError):
        ImageLimits(max_pixels=0)
    with pytest.raises(ConfigError):
        ImageLimits(min_side=-1)


def test_every_rejection_carries_the_path_reason_and_a_detail() -> None:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(b"<html></html>", "https://example.test/a.jpg")
    assert str(info.value) == "https://example.test/a.jpg: not_an_image (html)"


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_a_draft_also_scales_grey_and_cmyk_jpegs(mode: str) -> None:
    data = encode(textured_picture(35, (800, 600)).convert(mode), "JPEG")
    decoded = decode_image(data, "x", draft=(200, 150))
    assert (decoded.image.mode, decoded.image.size) == ("RGB", (200, 150))
    assert (decoded.width, decoded.height) == (800, 600)
