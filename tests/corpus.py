"""Test pictures: a hostile corpus of good and bad files, and quick generated pictures.

Plain functions, no fixtures, so any test (or benchmark) can call them:

* :func:`write_corpus` writes the bad-input corpus and returns the expected outcome per file;
* :func:`write_good_jpegs` writes distinct textured JPEGs quickly;
* :func:`coloured_picture` makes a solid colour picture with slight noise;
* the ``*_bytes`` / ``*_picture`` helpers build single specimens (bomb PNG, huge-screen GIF,
  asymmetric picture for orientation checks, ...) for the image tests.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage import data as skdata

from clipatlas.errors import Reason

__all__ = [
    "asymmetric_picture",
    "coloured_picture",
    "encode",
    "huge_screen_gif_bytes",
    "png_bomb_bytes",
    "textured_picture",
    "write_corpus",
    "write_good_jpegs",
]

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    b"<body><h1>Not Found</h1><svg width='10' height='10'></svg></body></html>\n"
)
JSON_BODY = b'{"error": "rate limited", "retry_after": 30, "items": []}\n'
SVG_WITH_PROLOG = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    b"<!-- Created with a vector editor -->\n"
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80">'
    b'<rect x="10" y="10" width="100" height="60" fill="teal"/></svg>\n'
)
SVG_WITH_BOM = b"\xef\xbb\xbf  \n" + SVG_WITH_PROLOG.split(b"\n", 3)[3]
PDF_DOCUMENT = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
EPS_DOCUMENT = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n%%EndComments\n"
    b"newpath 10 10 moveto 90 90 lineto stroke\nshowpage\n%%EOF\n"
)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """``image`` saved in ``fmt`` (a Pillow format name), as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def coloured_picture(rgb: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A solid ``rgb`` picture with slight (+-3) deterministic noise, mode RGB."""
    rng = np.random.default_rng([*rgb, *size])
    noise = rng.integers(-3, 4, size=(size[1], size[0], 3))
    pixels = np.clip(np.asarray(rgb, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def textured_picture(
    seed: int | tuple[int, ...], size: tuple[int, int] = (768, 512)
) -> Image.Image:
    """A distinct picture per seed: two-colour gradient, coarse and fine noise, random shapes."""
    rng = np.random.default_rng(seed)
    width, height = size
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.arange(width, dtype=np.float32)[None, :] * np.float32(np.cos(angle) / width)
    ys = np.arange(height, dtype=np.float32)[:, None] * np.float32(np.sin(angle) / height)
    ramp = xs + ys
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    start, end = rng.uniform(30, 225, 3).astype(np.float32), rng.uniform(30, 225, 3)
    pixels = start + (end - start).astype(np.float32) * ramp[..., None]
    coarse = rng.normal(0, 18, (height // 16 + 1, width // 16 + 1, 3)).astype(np.float32)
    pixels += np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[:height, :width]
    pixels += rng.integers(-10, 11, (height, width, 3), dtype=np.int8)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 9))):
        x0, x1 = sorted(rng.integers(0, width, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height, 2).tolist())
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1 + 2, y1 + 2), fill=colour, outline=(0, 0, 0))
    return image


def write_good_jpegs(
    dest: Path, n: int, size: tuple[int, int] = (768, 512), seed: int = 0
) -> list[Path]:
    """Write ``n`` distinct textured JPEGs (``s<seed>-<i>.jpg``) into ``dest``; their paths."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = dest / f"s{seed}-{i:04d}.jpg"
        textured_picture((seed, i), size).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def asymmetric_picture(size: tuple[int, int] = (48, 32)) -> Image.Image:
    """A picture that differs under every flip and rotation (corners and edges all distinct)."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack(
        [xs * 255 // (width - 1), ys * 255 // (height - 1), (xs * 7 + ys * 3) % 256], axis=-1
    ).astype(np.uint8)
    pixels[: height // 4, : width // 3] = (250, 20, 20)  # a block in the top-left corner
    return Image.fromarray(pixels)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb_bytes(side: int = 50_000) -> bytes:
    """A valid 1-bit grey PNG of ``side`` x ``side`` black pixels, about 300 KB for 50,000.

    The zlib stream of ``side * (1 + side / 8)`` zero bytes is assembled from one compressed,
    fully flushed block of zeros repeated, so building it takes milliseconds.
    """
    total = (1 + (side + 7) // 8) * side  # a filter byte and the packed bits of every row
    piece = 1 << 22
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(piece)) + compressor.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(total, piece)
    tail = compressor.compress(bytes(rest)) + compressor.flush()
    adler = ((total % 65521) << 16) | 1  # Adler-32 of zeros: a stays 1, b counts the bytes
    stream = b"\x78\xda" + block * count + tail + adler.to_bytes(4, "big")
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", stream)
        + _png_chunk(b"IEND", b"")
    )


def huge_screen_gif_bytes(width: int = 65_535, height: int = 65_535) -> bytes:
    """A 1x1-pixel GIF whose logical screen claims ``width`` x ``height``."""
    gif = bytearray(encode(Image.new("P", (1, 1), 0), "GIF"))
    gif[6:10] = struct.pack("<HH", width, height)
    return bytes(gif)


def _dos_eps_bytes() -> bytes:
    offsets = struct.pack("<IIIIIIH", 30, len(EPS_DOCUMENT), 0, 0, 0, 0, 0xFFFF)
    return b"\xc5\xd0\xd3\xc6" + offsets + EPS_DOCUMENT


def _animated_gif_bytes() -> bytes:
    frames = [
        coloured_picture(rgb, (40, 30)).quantize(colors=16)
        for rgb in ((150, 110, 60), (60, 150, 110), (110, 60, 150))
    ]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def _palette_with_transparency() -> Image.Image:
    image = textured_picture(11, (64, 48)).quantize(colors=32)
    image.info["transparency"] = 0
    return image


def _grey_alpha() -> Image.Image:
    grey = textured_picture(12, (64, 48)).convert("L")
    alpha = Image.linear_gradient("L").resize(grey.size)
    return Image.merge("LA", (grey, alpha))


def _rgba() -> Image.Image:
    rgba = textured_picture(13, (80, 60)).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").rotate(90).resize(rgba.size))
    return rgba


def _grey16_ramp() -> Image.Image:
    ramp = np.linspace(0, 65535, 1024).round().astype(np.uint16)
    return Image.fromarray(np.tile(ramp, (24, 1)))


def _oriented_jpeg(orientation: int) -> bytes:
    stored = asymmetric_picture((120, 80))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=92, exif=exif)


def _good_files() -> dict[str, bytes]:
    astronaut = Image.fromarray(skdata.astronaut())
    mirrored = astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((40, 60, 440, 380))
    return {
        "good/photos/astronaut.jpg": encode(astronaut, "JPEG", quality=90),
        "good/photos/chelsea.png": encode(Image.fromarray(skdata.chelsea()), "PNG"),
        "good/photos/coffee.webp": encode(Image.fromarray(skdata.coffee()), "WEBP", quality=85),
        "good/photos/rocket.bmp": encode(Image.fromarray(skdata.rocket()), "BMP"),
        "good/photos/astronaut-mirrored.tif": encode(mirrored, "TIFF", compression="tiff_lzw"),
        "good/generated/texture-a.jpg": encode(textured_picture(1, (320, 240)), "JPEG"),
        "good/generated/texture-b.png": encode(textured_picture(2, (200, 150)), "PNG"),
        "good/generated/swatch.png": encode(coloured_picture((110, 130, 100), (64, 48)), "PNG"),
        "good/modes/cmyk.jpg": encode(textured_picture(3, (160, 120)).convert("CMYK"), "JPEG"),
        "good/modes/grey16-ramp.png": encode(_grey16_ramp(), "PNG"),
        "good/modes/palette-transparency.png": encode(_palette_with_transparency(), "PNG"),
        "good/modes/grey-alpha.png": encode(_grey_alpha(), "PNG"),
        "good/modes/rgba.webp": encode(_rgba(), "WEBP", lossless=True),
        "good/modes/bilevel.png": encode(textured_picture(4, (96, 64)).convert("1"), "PNG"),
        "good/modes/progressive.jpg": encode(
            textured_picture(5, (160, 120)), "JPEG", progressive=True
        ),
        "good/exif/orientation-6.jpg": _oriented_jpeg(6),
        "good/exif/orientation-3.jpg": _oriented_jpeg(3),
        "good/animated/three-frames.gif": _animated_gif_bytes(),
        "good/named/café photo.png": encode(textured_picture(6, (90, 60)), "PNG"),
        "nested/deeper/still/deeper/texture-c.jpg": encode(textured_picture(7, (100, 80)), "JPEG"),
    }


def _bad_files(good: dict[str, bytes]) -> dict[str, tuple[bytes, Reason]]:
    rng = np.random.default_rng(99)
    truncated_gif = encode(textured_picture(8, (120, 90)).quantize(colors=64), "GIF")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + rng.bytes(512)
    return {
        "bad/empty.jpg": (b"", Reason.NOT_AN_IMAGE),
        "bad/error-page.jpg": (HTML_PAGE, Reason.NOT_AN_IMAGE),
        "bad/api-response.jpg": (JSON_BODY, Reason.NOT_AN_IMAGE),
        "bad/readme.png": (b"These are not the pixels you are looking for.\n", Reason.NOT_AN_IMAGE),
        "bad/random.jpg": (b"\x00rnd" + rng.bytes(4096), Reason.NOT_AN_IMAGE),
        "bad/truncated.jpg": (good["good/photos/astronaut.jpg"][:40_000], Reason.TRUNCATED),
        "bad/truncated.png": (good["good/photos/chelsea.png"][:100_000], Reason.TRUNCATED),
        "bad/drawing.svg": (SVG_WITH_PROLOG, Reason.UNSUPPORTED_FORMAT),
        "bad/drawing-bom.png": (SVG_WITH_BOM, Reason.UNSUPPORTED_FORMAT),
        "bad/document.pdf": (PDF_DOCUMENT, Reason.UNSUPPORTED_FORMAT),
        "bad/figure.eps": (EPS_DOCUMENT, Reason.UNSUPPORTED_FORMAT),
        "bad/figure-dos.eps": (_dos_eps_bytes(), Reason.UNSUPPORTED_FORMAT),
        "bad/phone.heic": (heic, Reason.UNSUPPORTED_FORMAT),
        "bad/favicon.ico": (
            encode(textured_picture(9, (32, 32)), "ICO", sizes=[(32, 32)]),
            Reason.UNSUPPORTED_FORMAT,
        ),
        "bad/layers.psd": (b"8BPS\x00\x01" + bytes(64), Reason.UNSUPPORTED_FORMAT),
        "bad/bomb.png": (png_bomb_bytes(50_000), Reason.TOO_LARGE),
        "bad/huge-screen.gif": (huge_screen_gif_bytes(), Reason.TOO_LARGE),
        "bad/tiny.png": (encode(coloured_picture((90, 90, 90), (8, 8)), "PNG"), Reason.TOO_SMALL),
        "nested/deeper/astronaut-copy.jpg": (good["good/photos/astronaut.jpg"], Reason.DUPLICATE),
        "nested/half.gif": (truncated_gif[: len(truncated_gif) // 2], Reason.TRUNCATED),
    }


def write_corpus(dest: Path) -> dict[str, str | None]:
    """Write the bad-input corpus under ``dest``.

    Returns relative POSIX path -> expected :class:`Reason` value, or None for a file that
    must be stored. Every duplicate sorts after the file it copies. No picture in it is a
    strong red or blue, so colour searches of tests that add their own pictures stay clear.
    """
    good = _good_files()
    bad = _bad_files(good)
    expected: dict[str, str | None] = {}
    for name, content in good.items():
        _write(dest / name, content)
        expected[name] = None
    for name, (content, reason) in bad.items():
        _write(dest / name, content)
        expected[name] = reason.value
    return expected


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
