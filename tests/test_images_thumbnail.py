from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from clipatlas.images import write_thumbnail
from tests.corpus import textured_picture


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(("size", "expected"), [((768, 512), (256, 171)), ((300, 900), (85, 256))])
def test_a_thumbnail_is_a_jpeg_whose_longest_side_is_at_most_256(
    tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    dest = tmp_path / "thumbs" / "ab" / "abc.jpg"
    write_thumbnail(textured_picture(51, size), dest)
    with Image.open(dest) as thumb:
        assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", expected)


def test_a_small_picture_is_never_upscaled(tmp_path: Path) -> None:
    write_thumbnail(textured_picture(52, (100, 40)), tmp_path / "t.jpg")
    with Image.open(tmp_path / "t.jpg") as thumb:
        assert thumb.size == (100, 40)


def test_the_longest_side_follows_max_side(tmp_path: Path) -> None:
    write_thumbnail(textured_picture(53, (640, 480)), tmp_path / "t.jpg", max_side=64)
    with Image.open(tmp_path / "t.jpg") as thumb:
        assert thumb.size == (64, 48)
    with pytest.raises(ValueError):
        write_thumbnail(textured_picture(53, (64, 48)), tmp_path / "u.jpg", max_side=0)


def test_writing_leaves_no_temp_file_and_replaces_an_older_thumbnail(tmp_path: Path) -> None:
    dest = tmp_path / "t.jpg"
    dest.write_bytes(b"old")
    write_thumbnail(textured_picture(54, (300, 200)), dest)
    assert _files(tmp_path) == ["t.jpg"]
    assert dest.read_bytes()[:3] == b"\xff\xd8\xff"


def test_a_failed_write_leaves_neither_a_temp_file_nor_a_partial_thumbnail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        assert hasattr(fp, "write")
        fp.write(b"\xff\xd8\xff half a picture")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        write_thumbnail(textured_picture(55, (300, 200)), tmp_path / "t.jpg")
    assert _files(tmp_path) == []


def test_an_existing_thumbnail_survives_a_failed_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "t.jpg"
    write_thumbnail(textured_picture(56, (300, 200)), dest)
    before = dest.read_bytes()

    def failing_replace(*_: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr("os.replace", failing_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_thumbnail(textured_picture(57, (300, 200)), dest)
    assert dest.read_bytes() == before and _files(tmp_path) == ["t.jpg"]


def test_a_picture_with_transparency_is_flattened_onto_white(tmp_path: Path) -> None:
    write_thumbnail(Image.new("RGBA", (40, 40), (0, 0, 0, 0)), tmp_path / "t.jpg")
    with Image.open(tmp_path / "t.jpg") as thumb:
        pixel = thumb.getpixel((20, 20))
        assert isinstance(pixel, tuple) and min(pixel) >= 250
