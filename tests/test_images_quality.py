from __future__ import annotations

import pytest
from PIL import Image, ImageFilter
from skimage import data as skdata

from clipatlas.images import Quality, quality_metrics
from tests.corpus import textured_picture

ASTRONAUT = Image.fromarray(skdata.astronaut())


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_a_picture_is_much_sharper_than_its_gaussian_blurred_copy(name: str) -> None:
    photo = Image.fromarray(getattr(skdata, name)())
    sharp = quality_metrics(photo, *photo.size).sharpness
    blurred = quality_metrics(photo.filter(ImageFilter.GaussianBlur(2)), *photo.size).sharpness
    assert sharp > 8 * blurred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sharpness_is_about_the_same_for_the_same_picture_at_two_resolutions(seed: int) -> None:
    large = textured_picture(seed, (2048, 1536))
    small = large.resize((640, 480), Image.Resampling.LANCZOS)
    a = quality_metrics(large, *large.size).sharpness
    b = quality_metrics(small, *small.size).sharpness
    assert 0.85 < a / b < 1.15


def test_sharpness_of_a_photo_survives_upscaling_to_four_times_its_size() -> None:
    large = ASTRONAUT.resize((2048, 2048), Image.Resampling.LANCZOS)
    a = quality_metrics(ASTRONAUT, 512, 512).sharpness
    b = quality_metrics(large, 2048, 2048).sharpness
    assert 0.85 < a / b < 1.15


def test_a_flat_picture_has_no_sharpness() -> None:
    assert quality_metrics(Image.new("RGB", (300, 200), (80, 90, 100)), 300, 200).sharpness == 0


def test_size_and_aspect_come_from_the_original_size_not_the_draft() -> None:
    draft = ASTRONAUT.resize((128, 64))
    quality = quality_metrics(draft, 1024, 512)
    assert (quality.width, quality.height, quality.aspect) == (1024, 512, 2.0)
    assert isinstance(quality, Quality)


def test_a_very_long_panorama_is_measured_without_blowing_up() -> None:
    panorama = textured_picture(5, (12_000, 40))
    assert quality_metrics(panorama, 12_000, 40).sharpness > 0


def test_a_non_positive_original_size_is_refused() -> None:
    with pytest.raises(ValueError):
        quality_metrics(ASTRONAUT, 0, 10)
