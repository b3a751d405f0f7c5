from __future__ import annotations

import time

import pytest
from PIL import Image, features

from clipatlas.errors import ImageDecodeError, Reason
from clipatlas.images import ALLOWED_FORMATS, sniff_format
from tests.corpus import (
    EPS_DOCUMENT,
    HTML_PAGE,
    JSON_BODY,
    PDF_DOCUMENT,
    SVG_WITH_BOM,
    SVG_WITH_PROLOG,
    encode,
    textured_picture,
)

PICTURE = textured_picture(21, (40, 30))


def _reject(data: bytes) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as info:
        sniff_format(data, "upload.jpg")
    assert info.value.path == "upload.jpg"
    return info.value


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("JPEG", {}),
        ("PNG", {}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
        ("GIF", {}),
        ("BMP", {}),
        ("TIFF", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
    ],
)
def test_every_allowed_format_is_recognised_from_its_bytes(
    fmt: str, params: dict[str, object]
) -> None:
    assert sniff_format(encode(PICTURE, fmt, **params), "x") == fmt


def test_allowed_formats_are_the_six_decoded_ones() -> None:
    assert frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"}) == ALLOWED_FORMATS


def test_the_file_name_never_decides_the_format() -> None:
    assert sniff_format(encode(PICTURE, "PNG"), "holiday.jpg") == "PNG"
    assert _reject(HTML_PAGE).reason is Reason.NOT_AN_IMAGE


def test_a_big_endian_tiff_and_a_bigtiff_header_are_tiffs() -> None:
    assert sniff_format(b"MM\x00*\x00\x00\x00\x08" + bytes(32), "x") == "TIFF"
    assert sniff_format(b"II+\x00\x08\x00\x00\x00" + bytes(32), "x") == "TIFF"


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"", "empty file"),
        (b" \n\t\n", "blank text"),
        (HTML_PAGE, "html"),
        (b"<html><body>Service Unavailable</body></html>", "html"),
        (JSON_BODY, "json"),
        (b"[1, 2, 3]", "json"),
        (b"Just some words in a text file.\nAnd another line.\n", "text"),
        (b'<?xml version="1.0"?><rss><channel/></rss>', "xml"),
        (b"\x1f\x8b\x08\x00" + bytes(40), "gzip data"),
        (b"PK\x03\x04" + bytes(40), "zip archive"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(16), None),
        (bytes(range(256)) * 4, "unknown binary data"),
        (b"BMW owners manual, chapter one", "text"),
    ],
)
def test_non_images_are_not_an_image(data: bytes, detail: str | None) -> None:
    error = _reject(data)
    assert error.reason is Reason.NOT_AN_IMAGE
    if detail is not None:
        assert error.detail == detail


def test_an_html_page_with_inline_svg_icons_is_a_page_not_an_svg() -> None:
    error = _reject(HTML_PAGE)
    assert (error.reason, error.detail) == (Reason.NOT_AN_IMAGE, "html")


def _utf16_svg() -> bytes:
    return "\ufeff<svg xmlns='http://www.w3.org/2000/svg'/>".encode("utf-16-le")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (SVG_WITH_PROLOG, "svg"),
        (SVG_WITH_BOM, "svg"),
        (b"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 1 1'/>", "svg"),
        (b"\n\n  <svg:svg xmlns:svg='http://www.w3.org/2000/svg'/>", "svg"),
        (_utf16_svg(), "svg"),
        (PDF_DOCUMENT, "pdf"),
        (encode(PICTURE, "PDF"), "pdf"),
        (EPS_DOCUMENT, "eps"),
        (encode(PICTURE, "EPS"), "eps"),
        (b"%!PS-Adobe-3.0\n%%Pages: 1\nshowpage\n", "postscript"),
        (b"\xc5\xd0\xd3\xc6\x1e\x00\x00\x00" + bytes(22) + EPS_DOCUMENT, "eps"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic" + bytes(64), "heic"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64), "avif"),
        (encode(PICTURE, "ICO", sizes=[(16, 16)]), "ico"),
        (b"\x00\x00\x02\x00\x01\x00" + bytes(40), "cur"),
        (b"8BPS\x00\x01" + bytes(64), "psd"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(64), "jpeg2000"),
        (b"\xff\x4f\xff\x51" + bytes(64), "jpeg2000"),
        (b"\xff\x0a" + bytes(64), "jxl"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + bytes(64), "jxl"),
        (encode(PICTURE, "PPM"), "pnm"),
        (encode(PICTURE, "PCX"), "pcx"),
        (encode(PICTURE, "SGI"), "sgi"),
        (b"qoif" + bytes(64), "qoi"),
        (b"DDS |" + bytes(64), "dds"),
        (b"icns" + bytes(64), "icns"),
        (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n", "hdr"),
    ],
)
def test_recognised_but_refused_formats_are_unsupported_and_named(data: bytes, name: str) -> None:
    error = _reject(data)
    assert (error.reason, error.detail) == (Reason.UNSUPPORTED_FORMAT, name)


@pytest.mark.skipif(not features.check("jpg_2000"), reason="Pillow built without OpenJPEG")
def test_a_real_jpeg_2000_file_is_unsupported() -> None:
    error = _reject(encode(PICTURE, "JPEG2000"))
    assert (error.reason, error.detail) == (Reason.UNSUPPORTED_FORMAT, "jpeg2000")


# Pillow < 11.2 has no AVIF module at all (and warns when asked for it by name)
_AVIF = "avif" in features.modules and bool(features.check_module("avif"))


@pytest.mark.skipif(not _AVIF, reason="Pillow built without AVIF")
def test_a_real_avif_file_is_unsupported() -> None:
    error = _reject(encode(PICTURE, "AVIF"))
    assert (error.reason, error.detail) == (Reason.UNSUPPORTED_FORMAT, "avif")


def test_sniffing_costs_the_same_for_a_huge_file_as_for_a_small_one() -> None:
    head = encode(Image.new("RGB", (8, 8)), "PNG")
    zeros = bytes(200_000_000)
    png = head + zeros
    started = time.perf_counter()
    assert sniff_format(png, "x") == "PNG"
    assert _reject(zeros).reason is Reason.NOT_AN_IMAGE
    assert time.perf_counter() - started < 0.05
