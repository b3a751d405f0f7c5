"""Random bytes and random damage to valid files only ever give a picture or ImageDecodeError."""

from __future__ import annotations

import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from clipatlas.errors import ImageDecodeError
from clipatlas.images import ImageLimits, analyse_bytes
from tests.corpus import encode, textured_picture

# A small pixel budget keeps damaged headers that claim big sizes quick to reject or decode.
LIMITS = ImageLimits(max_pixels=2_000_000, min_side=1)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_PICTURE = textured_picture(71, (48, 32))
SEEDS = [
    encode(_PICTURE, "JPEG", quality=80),
    encode(_PICTURE, "JPEG", progressive=True),
    encode(_PICTURE, "PNG"),
    encode(_PICTURE.quantize(colors=16), "PNG", transparency=0),
    encode(_PICTURE.quantize(colors=32), "GIF"),
    encode(_PICTURE, "WEBP", quality=80),
    encode(_PICTURE.convert("RGBA"), "WEBP", lossless=True),
    encode(_PICTURE, "BMP"),
    encode(_PICTURE.quantize(colors=16), "BMP"),
    encode(_PICTURE, "TIFF"),
    encode(_PICTURE, "TIFF", compression="tiff_lzw"),
    encode(_PICTURE.convert("CMYK"), "JPEG"),
]
MAGIC = [
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"II*\x00",
    b"MM\x00*",
    b"BM" + bytes(8) + b"\x36\x00\x00\x00\x28\x00\x00\x00",
]


def _outcome(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may leak a warning either
        try:
            picture = analyse_bytes(data, "fuzz", LIMITS, draft=(16, 16))
        except ImageDecodeError:
            return
    assert picture.image.mode == "RGB"
    assert isinstance(picture.image, Image.Image)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_only_ever_raise_image_decode_error(data: bytes) -> None:
    _outcome(data)


@FUZZ
@given(st.sampled_from(MAGIC), st.binary(max_size=2048))
def test_random_bytes_behind_a_real_magic_number_only_ever_raise_image_decode_error(
    magic: bytes, tail: bytes
) -> None:
    _outcome(magic + tail)


_MUTATION = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 16), st.just(0)),
    st.tuples(st.just("drop"), st.integers(0, 1 << 16), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.integers(0, 255)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, position, value in mutations:
        if not out:
            break
        at = position % len(out)
        if kind == "set":
            out[at] = value
        elif kind == "flip":
            out[at] ^= 1 << value
        elif kind == "cut":
            del out[at:]
        elif kind == "drop":
            del out[at : at + value]
        else:
            out.insert(at, value)
    return bytes(out)


@FUZZ
@given(st.sampled_from(range(len(SEEDS))), st.lists(_MUTATION, min_size=1, max_size=6))
def test_random_damage_to_valid_files_only_ever_raises_image_decode_error(
    seed: int, mutations: list[tuple[str, int, int]]
) -> None:
    _outcome(_mutate(SEEDS[seed], mutations))


@FUZZ
@given(st.sampled_from(range(len(SEEDS))), st.integers(0, 40), st.binary(min_size=1, max_size=8))
def test_damage_to_the_header_only_ever_raises_image_decode_error(
    seed: int, offset: int, patch: bytes
) -> None:
    data = bytearray(SEEDS[seed])
    data[offset : offset + len(patch)] = patch
    _outcome(bytes(data))
