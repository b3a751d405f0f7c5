"""The ``hf:`` embedder reproduces transformers' own CLIP and SigLIP pipelines, offline."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clipatlas.embedders import locate
from clipatlas.embedders.base import Embedder, l2_normalize
from clipatlas.embedders.hf_clip import preprocessor_from_hf
from clipatlas.errors import ConfigError, ModelLoadError
from clipatlas.registry import Registry
from clipatlas.settings import Settings
from tests.tiny_models import SAMPLE_TEXTS, sample_pictures

pytest_plugins = ("tests.embedder_fixtures",)

HF_MODELS = {"hf-clip": "longest", "hf-siglip": "max_length"}  # how each reference pads text


def _reference_vectors(
    directory: Path, pictures: list[Image.Image], padding: str
) -> tuple[Any, Any]:
    """Image and text vectors the way transformers' documentation computes them."""
    import torch
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(directory, local_files_only=True).eval()
    processor = AutoImageProcessor.from_pretrained(directory, local_files_only=True, backend="pil")
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    with torch.inference_mode():
        images = model.get_image_features(**processor(images=pictures, return_tensors="pt"))
        tokens = tokenizer(SAMPLE_TEXTS, padding=padding, truncation=True, return_tensors="pt")
        texts = model.get_text_features(**tokens)
    as_numpy = [getattr(out, "pooler_output", out).numpy() for out in (images, texts)]
    return l2_normalize(as_numpy[0]), l2_normalize(as_numpy[1])


@pytest.mark.parametrize("name", sorted(HF_MODELS))
def test_vectors_match_the_transformers_reference_pipeline(
    name: str, tiny_model_dirs: dict[str, Path], tiny_embedders: dict[str, Embedder]
) -> None:
    pictures = sample_pictures(6)
    expected_images, expected_texts = _reference_vectors(
        tiny_model_dirs[name], pictures, HF_MODELS[name]
    )
    embedder = tiny_embedders[name]
    np.testing.assert_allclose(embedder.embed_images(pictures), expected_images, atol=1e-5)
    np.testing.assert_allclose(embedder.embed_texts(SAMPLE_TEXTS), expected_texts, atol=1e-5)


@pytest.mark.parametrize("name", sorted(HF_MODELS))
def test_our_preprocessor_matches_the_models_own_pil_image_processor(
    name: str, tiny_model_dirs: dict[str, Path], tiny_embedders: dict[str, Embedder]
) -> None:
    from transformers import AutoImageProcessor

    pictures = sample_pictures(8)  # odd crop margins, portrait and landscape
    processor = AutoImageProcessor.from_pretrained(tiny_model_dirs[name], backend="pil")
    expected = processor(images=pictures, return_tensors="np")["pixel_values"]
    preprocess = tiny_embedders[name].image_preprocessor()
    np.testing.assert_allclose(np.stack([preprocess(p) for p in pictures]), expected, atol=1e-5)


@pytest.mark.parametrize("name", sorted(HF_MODELS))
def test_our_preprocessor_is_close_to_the_default_torchvision_image_processor(
    name: str, tiny_model_dirs: dict[str, Path], tiny_embedders: dict[str, Embedder]
) -> None:
    from transformers import AutoImageProcessor

    pictures = sample_pictures(8)
    processor = AutoImageProcessor.from_pretrained(tiny_model_dirs[name])
    expected = processor(images=pictures, return_tensors="np")["pixel_values"]
    preprocess = tiny_embedders[name].image_preprocessor()
    ours = np.stack([preprocess(p) for p in pictures])
    assert np.abs(ours - expected).mean() < 1e-3  # tensor resampling differs by rounding only


def test_clip_centre_crops_and_siglip_squashes(tiny_embedders: dict[str, Embedder]) -> None:
    clip = tiny_embedders["hf-clip"].image_preprocessor()
    siglip = tiny_embedders["hf-siglip"].image_preprocessor()
    assert (clip.resize_mode, clip.crop, clip.size) == ("shortest", (32, 32), 32)
    assert (siglip.resize_mode, siglip.crop) == ("squash", (32, 32))
    assert siglip.mean == siglip.std == (0.5, 0.5, 0.5)


def test_a_custom_rescale_factor_is_folded_into_mean_and_std() -> None:
    processor = SimpleNamespace(
        size={"height": 8, "width": 8},
        resample=2,
        do_rescale=True,
        rescale_factor=1 / 127.5,
        do_normalize=True,
        image_mean=[1.0, 1.0, 1.0],
        image_std=[1.0, 1.0, 1.0],
    )
    preprocess = preprocessor_from_hf(processor)
    picture = sample_pictures(1)[0].resize((8, 8))
    expected = np.asarray(picture, np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    np.testing.assert_allclose(preprocess(picture), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"do_resize": False}, "does not resize"),
        ({"size": {"shortest_edge": 8, "longest_edge": 12}}, "unsupported"),
        (
            {
                "size": {"height": 8, "width": 8},
                "do_center_crop": True,
                "crop_size": {"height": 4, "width": 4},
            },
            "unsupported",
        ),
    ],
)
def test_image_processors_without_a_fixed_output_size_are_refused(
    changes: dict[str, Any], message: str
) -> None:
    base = {
        "size": {"shortest_edge": 8},
        "image_mean": [0.5] * 3,
        "image_std": [0.5] * 3,
        "rescale_factor": 1 / 255,
    }
    with pytest.raises(ValueError, match=message):
        preprocessor_from_hf(SimpleNamespace(**{**base, **changes}))


def test_a_missing_directory_raises_model_load_error_naming_the_path(
    embedder_registry: Registry, embedder_settings: Settings, tmp_path: Path
) -> None:
    missing = tmp_path / "no" / "such-model"
    with pytest.raises(ModelLoadError, match="no such directory") as caught:
        embedder_registry.create_embedder(f"hf:{missing}", embedder_settings)
    assert str(missing) in str(caught.value)
    assert caught.value.model == f"hf:{missing}"


def test_an_uncached_hub_id_fails_offline_and_says_to_pass_a_local_path(
    hub_offline: None, embedder_registry: Registry, embedder_settings: Settings
) -> None:
    with pytest.raises(ModelLoadError, match="pass a local path") as caught:
        embedder_registry.create_embedder("hf:nobody-here/no-such-clip", embedder_settings)
    assert "HF_HUB_OFFLINE" in caught.value.detail


def test_an_unreachable_hub_fails_at_once_instead_of_retrying(
    embedder_registry: Registry, embedder_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(locate, "hub_reachable", lambda: False)
    with pytest.raises(ModelLoadError, match="unreachable; pass a local path"):
        embedder_registry.create_embedder("hf:nobody-here/no-such-clip", embedder_settings)


def test_an_empty_directory_raises_model_load_error_naming_it(
    embedder_registry: Registry, embedder_settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError) as caught:
        embedder_registry.create_embedder(f"hf:{tmp_path}", embedder_settings)
    assert str(tmp_path.resolve()) in caught.value.detail


def test_a_file_instead_of_a_directory_is_refused(
    embedder_registry: Registry, embedder_settings: Settings, tmp_path: Path
) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="is a file"):
        embedder_registry.create_embedder(f"hf:{weights}", embedder_settings)


def test_an_empty_model_name_is_a_config_error(
    embedder_registry: Registry, embedder_settings: Settings
) -> None:
    with pytest.raises(ConfigError):
        embedder_registry.create_embedder("hf:", embedder_settings)


def test_a_model_that_is_not_clip_family_is_refused(
    hub_offline: None, embedder_registry: Registry, embedder_settings: Settings, tmp_path: Path
) -> None:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not a CLIP-family model"):
        embedder_registry.create_embedder(f"hf:{tmp_path}", embedder_settings)


def test_siglip2_naflex_checkpoints_are_refused_with_the_reason(
    hub_offline: None, embedder_registry: Registry, embedder_settings: Settings, tmp_path: Path
) -> None:
    try:
        from transformers import Siglip2Config
    except ImportError:  # transformers < 4.49 (locks/lowest.txt) cannot read SigLIP 2 at all
        pytest.skip("this transformers has no SigLIP 2")
    Siglip2Config().save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="NaFlex"):
        embedder_registry.create_embedder(f"hf:{tmp_path}", embedder_settings)


@pytest.mark.slow
def test_the_benchmark_model_is_shaped_like_vit_b_32(
    hub_offline: None,
    embedder_registry: Registry,
    embedder_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.tiny_models import build_vit_b32_sized_hf_clip

    directory = build_vit_b32_sized_hf_clip(tmp_path_factory.mktemp("vit-b-32"))
    embedder = embedder_registry.create_embedder(f"hf:{directory}", embedder_settings)
    preprocess = embedder.image_preprocessor()
    assert (embedder.dim, preprocess.size, preprocess.crop) == (512, 224, (224, 224))
    vectors = embedder.embed_images(sample_pictures(3))
    assert vectors.shape == (3, 512)
