from __future__ import annotations

import hashlib
import io
import itertools

import pytest
from PIL import Image
from skimage import data as skdata

from clipatlas.images import analyse_bytes, hamming_distance, perceptual_hash
from tests.corpus import encode

PHOTOS = {
    name: Image.fromarray(getattr(skdata, name)())
    for name in ("astronaut", "chelsea", "coffee", "rocket")
}


def test_a_perceptual_hash_is_sixteen_hex_digits_and_deterministic() -> None:
    first = perceptual_hash(PHOTOS["astronaut"])
    assert len(first) == 16 and int(first, 16) >= 0 and first == first.lower()
    assert perceptual_hash(PHOTOS["astronaut"].copy()) == first


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_a_resized_and_recompressed_copy_hashes_within_a_few_bits(name: str) -> None:
    photo = PHOTOS[name]
    smaller = photo.resize((photo.width * 3 // 5, photo.height * 3 // 5), Image.Resampling.LANCZOS)
    copy = Image.open(io.BytesIO(encode(smaller, "JPEG", quality=60)))
    assert hamming_distance(perceptual_hash(photo), perceptual_hash(copy)) <= 6


def test_different_pictures_hash_far_apart() -> None:
    hashes = {name: perceptual_hash(photo) for name, photo in PHOTOS.items()}
    for a, b in itertools.combinations(hashes.values(), 2):
        assert hamming_distance(a, b) >= 20


def test_the_hash_ignores_colour_mode() -> None:
    photo = PHOTOS["coffee"]
    assert perceptual_hash(photo) == perceptual_hash(photo.convert("L"))


def test_hamming_distance_counts_differing_bits() -> None:
    assert hamming_distance("0" * 16, "0" * 16) == 0
    assert hamming_distance("0" * 16, "f" * 16) == 64
    assert hamming_distance("8000000000000001", "0000000000000000") == 2


@pytest.mark.parametrize("bad", ["", "abc", "g" * 16, "0" * 17])
def test_hamming_distance_refuses_something_that_is_not_a_hash(bad: str) -> None:
    with pytest.raises(ValueError):
        hamming_distance(bad, "0" * 16)


def test_analysis_hashes_the_raw_bytes_with_sha256() -> None:
    data = encode(PHOTOS["rocket"], "PNG")
    assert analyse_bytes(data, "x").sha256 == hashlib.sha256(data).hexdigest()
