"""Every image/text embedder keeps the same contract, checked on tiny random-weight models.

The models are real transformers/open_clip models saved to disk and loaded through the
registry from their local directories, exactly as a user's model would be.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from clipatlas.embedders.base import Embedder
from clipatlas.errors import EmbedderError
from clipatlas.registry import Registry
from clipatlas.settings import Settings
from tests.tiny_models import SAMPLE_TEXTS, TINY_BUILDERS, TINY_PROJECTION_DIM, sample_pictures

pytest_plugins = ("tests.embedder_fixtures",)

MODELS = sorted(TINY_BUILDERS)
EXPECTED_DIMS = {"hf-clip": TINY_PROJECTION_DIM, "hf-siglip": 32, "open_clip": TINY_PROJECTION_DIM}


@pytest.fixture(params=MODELS)
def model_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def embedder(model_name: str, tiny_embedders: dict[str, Embedder]) -> Embedder:
    return tiny_embedders[model_name]


def _assert_unit_rows(vectors: np.ndarray, count: int, dim: int) -> None:
    assert vectors.shape == (count, dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_each_tiny_model_satisfies_the_embedder_protocol(embedder: Embedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.modalities == frozenset({"image", "text"})


def test_image_and_text_vectors_have_the_declared_dim_and_unit_length(
    embedder: Embedder, model_name: str
) -> None:
    assert embedder.dim == EXPECTED_DIMS[model_name]
    _assert_unit_rows(embedder.embed_images(sample_pictures(5)), 5, embedder.dim)
    _assert_unit_rows(embedder.embed_texts(SAMPLE_TEXTS), len(SAMPLE_TEXTS), embedder.dim)


def test_embedding_the_same_inputs_twice_gives_identical_vectors(embedder: Embedder) -> None:
    pictures = sample_pictures(3)
    np.testing.assert_array_equal(embedder.embed_images(pictures), embedder.embed_images(pictures))
    np.testing.assert_array_equal(
        embedder.embed_texts(SAMPLE_TEXTS), embedder.embed_texts(SAMPLE_TEXTS)
    )


def test_a_batch_gives_the_same_vectors_as_one_input_at_a_time(embedder: Embedder) -> None:
    pictures = sample_pictures(5)  # batch_size is 2: three batches, the last one short
    batched = embedder.embed_images(pictures)
    single = np.concatenate([embedder.embed_images([p]) for p in pictures])
    np.testing.assert_allclose(batched, single, atol=1e-5)

    batched_texts = embedder.embed_texts(SAMPLE_TEXTS)  # short and long texts padded together
    single_texts = np.concatenate([embedder.embed_texts([t]) for t in SAMPLE_TEXTS])
    np.testing.assert_allclose(batched_texts, single_texts, atol=1e-5)


def test_embed_images_equals_embed_pixels_of_the_worker_crops(embedder: Embedder) -> None:
    pictures = sample_pictures(4)
    preprocess = embedder.image_preprocessor()
    crops = np.stack([preprocess.resize_crop(p) for p in pictures])
    assert crops.dtype == np.uint8 and crops.shape[1:] == (*preprocess.crop, 3)
    np.testing.assert_allclose(
        embedder.embed_images(pictures), embedder.embed_pixels(crops), atol=1e-6
    )
    normalised = preprocess.normalize(crops)
    np.testing.assert_allclose(normalised[0], preprocess(pictures[0]), atol=1e-6)


def test_float_arrays_given_as_crops_are_refused_with_a_clear_error(embedder: Embedder) -> None:
    preprocess = embedder.image_preprocessor()
    floats = np.stack([preprocess(p) for p in sample_pictures(2)])
    with pytest.raises(EmbedderError, match="uint8 crops"):
        embedder.embed_pixels(floats)


def test_the_image_preprocessor_survives_pickling_for_decode_workers(embedder: Embedder) -> None:
    preprocess = embedder.image_preprocessor()
    clone = pickle.loads(pickle.dumps(preprocess))
    assert clone == preprocess
    picture = sample_pictures(1)[0]
    np.testing.assert_array_equal(clone(picture), preprocess(picture))


def test_texts_with_different_content_get_different_vectors(embedder: Embedder) -> None:
    vectors = embedder.embed_texts(["a photo of a cat", "stock market report"])
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)


def test_empty_input_gives_an_empty_matrix_of_the_right_width(embedder: Embedder) -> None:
    assert embedder.embed_images([]).shape == (0, embedder.dim)
    assert embedder.embed_texts([]).shape == (0, embedder.dim)
    crop_h, crop_w = embedder.image_preprocessor().crop
    empty = np.zeros((0, crop_h, crop_w, 3), np.uint8)
    assert embedder.embed_pixels(empty).shape == (0, embedder.dim)


def test_the_id_is_the_kind_plus_the_absolute_directory_even_for_a_relative_path(
    model_name: str,
    tiny_model_dirs: dict[str, Path],
    embedder_registry: Registry,
    embedder_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kind = TINY_BUILDERS[model_name][0]
    directory = tiny_model_dirs[model_name]
    monkeypatch.chdir(directory.parent)
    relative = embedder_registry.create_embedder(f"{kind}:./{directory.name}", embedder_settings)
    assert relative.id == f"{kind}:{directory.resolve()}"
