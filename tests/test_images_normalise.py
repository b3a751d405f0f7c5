from __future__ import annotations

import io

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from clipatlas.images import BACKGROUND, decode_image
from clipatlas.images.normalise import to_rgb
from tests.corpus import asymmetric_picture, encode, textured_picture

REFERENCE = np.asarray(asymmetric_picture((48, 32)))  # what a viewer must show, 48 x 32


def _stored_for(orientation: int, shown: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Pixels a camera stores so that a viewer honouring ``orientation`` shows ``shown``.

    Built by hand from the EXIF definitions (0th row / 0th column placement), independently
    of the table the decoder uses.
    """
    return {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # rotated 180
        4: lambda a: a[::-1, :],  # mirrored top-bottom
        5: lambda a: a.transpose(1, 0, 2),  # 0th row is the left side, 0th column the top
        6: lambda a: np.rot90(a, 1),  # 0th row is the right side: shown turned 90 clockwise
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # transverse
        8: lambda a: np.rot90(a, -1),  # 0th row is the left side, 0th column the bottom
    }[orientation](shown)


def _with_orientation(pixels: NDArray[np.uint8], orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    params: dict[str, object] = {"quality": 95} if fmt == "JPEG" else {}
    return encode(Image.fromarray(np.ascontiguousarray(pixels)), fmt, exif=exif, **params)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_shows_the_same_pixels_as_the_hand_rotated_reference(
    orientation: int,
) -> None:
    data = _with_orientation(_stored_for(orientation, REFERENCE), orientation, "PNG")
    decoded = decode_image(data, "x")
    assert (decoded.width, decoded.height) == (48, 32)
    np.testing.assert_array_equal(np.asarray(decoded.image), REFERENCE)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_to_jpegs_too(orientation: int) -> None:
    data = _with_orientation(_stored_for(orientation, REFERENCE), orientation, "JPEG")
    decoded = decode_image(data, "x")
    assert (decoded.width, decoded.height) == (48, 32)
    diff = np.abs(np.asarray(decoded.image, np.int16) - REFERENCE.astype(np.int16))
    assert diff.mean() < 6


def test_a_corrupt_exif_block_does_not_reject_the_picture() -> None:
    data = encode(textured_picture(41, (64, 48)), "JPEG")
    junk = b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\x13" * 40
    broken = data[:2] + b"\xff\xe1" + (len(junk) + 2).to_bytes(2, "big") + junk + data[2:]
    assert decode_image(broken, "x").image.size == (64, 48)


def test_a_palette_picture_with_a_transparent_index_is_composited_onto_white() -> None:
    palette_image = Image.new("P", (32, 32), 0)
    palette_image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    palette_image.paste(1, (0, 0, 16, 32))
    data = encode(palette_image, "PNG", transparency=0)
    rgb = decode_image(data, "x").image
    assert rgb.getpixel((24, 5)) == BACKGROUND == (255, 255, 255)
    assert rgb.getpixel((5, 5)) == (200, 30, 30)


def test_a_grey_alpha_picture_is_composited_onto_white() -> None:
    grey = Image.new("L", (48, 16), 0)
    steps = np.array([[0] * 16 + [128] * 16 + [255] * 16], np.uint8)
    alpha = Image.fromarray(np.repeat(steps, 16, axis=0))
    data = encode(Image.merge("LA", (grey, alpha)), "PNG")
    rgb = decode_image(data, "x").image
    assert rgb.getpixel((5, 5)) == (255, 255, 255)
    assert rgb.getpixel((21, 5)) in ((127, 127, 127), (128, 128, 128))
    assert rgb.getpixel((40, 5)) == (0, 0, 0)


def test_rgba_and_rgb_with_a_transparent_colour_are_composited_onto_the_same_background() -> None:
    rgba = Image.new("RGBA", (32, 32), (10, 20, 30, 0))
    rgba.paste((10, 200, 30, 255), (0, 0, 16, 32))
    for data in (
        encode(rgba, "PNG"),
        encode(rgba, "WEBP", lossless=True),
        encode(rgba.convert("RGB"), "PNG", transparency=(10, 20, 30)),
    ):
        rgb = decode_image(data, "x").image
        assert rgb.getpixel((24, 5)) == BACKGROUND
        assert rgb.getpixel((5, 5)) == (10, 200, 30)


def test_a_16_bit_grey_ramp_maps_onto_0_to_255_monotonically_without_clipping() -> None:
    ramp = np.linspace(0, 65535, 1024).round().astype(np.uint16)
    source = Image.fromarray(np.tile(ramp, (20, 1)))
    assert source.mode == "I;16"
    data = encode(source, "PNG")
    assert data[24] == 16  # really a 16-bit PNG
    row = np.asarray(decode_image(data, "x").image)[10, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0)
    assert len(np.unique(row)) == 256
    np.testing.assert_allclose(row, np.linspace(0, 255, 1024), atol=1)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I"])
def test_every_16_bit_grey_mode_scales_the_same_way(mode: str) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    if mode == "I":
        image = Image.fromarray(values.astype(np.int32))
    else:
        dtype = ">u2" if mode == "I;16B" else "<u2"
        image = Image.frombytes(mode, (4, 1), values.astype(dtype).tobytes())
    assert image.mode == mode
    assert list(np.asarray(to_rgb(image))[0, :, 0]) == [0, 1, 128, 255]


def test_float_pictures_scale_from_0_to_1_or_stretch_from_their_own_range() -> None:
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    wide = Image.fromarray(np.array([[-10.0, 0.0, 10.0]], dtype=np.float32))
    assert list(np.asarray(to_rgb(unit))[0, :, 0]) == [0, 128, 255]
    assert list(np.asarray(to_rgb(wide))[0, :, 0]) == [0, 128, 255]


def test_a_cmyk_jpeg_converts_close_to_the_reference_rgb() -> None:
    reference = textured_picture(42, (96, 64))
    cmyk = reference.convert("CMYK")
    jpeg = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(jpeg)).mode == "CMYK"
    for data in (jpeg, encode(cmyk, "TIFF")):
        rgb = decode_image(data, "x").image
        diff = np.abs(np.asarray(rgb, np.int16) - np.asarray(reference, np.int16))
        assert diff.mean() < 6


def test_an_adobe_inverted_cmyk_jpeg_is_not_shown_as_a_negative() -> None:
    reference = Image.new("RGB", (32, 32), (240, 200, 40))
    data = encode(reference.convert("CMYK"), "JPEG", quality=95)
    assert b"Adobe" in data[:200]  # libjpeg marks CMYK as Adobe (inverted) CMYK
    pixel = decode_image(data, "x").image.getpixel((16, 16))
    assert isinstance(pixel, tuple)
    assert np.abs(np.subtract(pixel, (240, 200, 40))).max() <= 6


@pytest.mark.parametrize("mode", ["1", "L", "P", "YCbCr", "HSV", "RGBX", "CMYK", "RGBa", "PA"])
def test_every_other_mode_becomes_rgb_of_the_same_size(mode: str) -> None:
    rgb = to_rgb(textured_picture(43, (40, 30)).convert(mode))
    assert rgb.mode == "RGB" and rgb.size == (40, 30)


def test_hsv_and_lab_colours_convert_to_the_expected_rgb() -> None:
    hsv = Image.new("HSV", (2, 2), (0, 255, 255))
    assert to_rgb(hsv).getpixel((0, 0)) == (255, 0, 0)
    lab = Image.frombytes("LAB", (3, 1), bytes([255, 128, 128, 0, 128, 128, 136, 208, 195]))
    white, black, red = (to_rgb(lab).getpixel((x, 0)) for x in range(3))
    assert white == (255, 255, 255) and black == (0, 0, 0)
    assert isinstance(red, tuple) and red[0] > 200 and red[1] < 60 and red[2] < 60


def test_premultiplied_grey_alpha_is_composited_like_straight_alpha() -> None:
    straight = Image.merge("LA", (Image.new("L", (4, 4), 100), Image.new("L", (4, 4), 128)))
    premultiplied = Image.merge("La", (Image.new("L", (4, 4), 50), Image.new("L", (4, 4), 128)))
    a, b = to_rgb(straight).getpixel((0, 0)), to_rgb(premultiplied).getpixel((0, 0))
    assert isinstance(a, tuple) and isinstance(b, tuple)
    assert np.abs(np.subtract(a, b)).max() <= 1


def test_an_rgb_picture_is_returned_as_is() -> None:
    image = textured_picture(44, (20, 20))
    assert to_rgb(image) is image


@pytest.mark.parametrize("kind", ["rgb16", "rgba16", "grey16-big-endian", "float", "int32"])
def test_high_bit_depth_tiffs_map_a_full_ramp_onto_0_to_255(kind: str) -> None:
    tifffile = pytest.importorskip("tifffile")
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (20, 1))
    params: dict[str, object] = {}
    if kind == "rgb16":
        pixels, params["photometric"] = np.stack([ramp] * 3, axis=-1), "rgb"
    elif kind == "rgba16":
        opaque = np.full((20, 256, 1), 65535, np.uint16)
        pixels = np.concatenate([np.stack([ramp] * 3, axis=-1), opaque], axis=-1)
        params["photometric"] = "rgb"
    elif kind == "grey16-big-endian":
        pixels, params["byteorder"] = ramp, ">"
    elif kind == "float":
        pixels = (ramp / 65535.0).astype(np.float32)
    else:
        pixels = ramp.astype(np.int32)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels, **params)
    row = np.asarray(decode_image(buffer.getvalue(), kind).image)[5, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)
    assert len(np.unique(row)) == 256
