"""The ``open_clip:`` embedder: every way of naming a model, and fidelity to open_clip itself."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from clipatlas.embedders.base import Embedder
from clipatlas.embedders.open_clip import parse_open_clip_spec, preprocessor_from_open_clip
from clipatlas.errors import ModelLoadError
from clipatlas.registry import Registry
from clipatlas.settings import Settings
from tests.tiny_models import SAMPLE_TEXTS, TINY_PROJECTION_DIM, sample_pictures

pytest_plugins = ("tests.embedder_fixtures",)

TINY_ARCH = "clipatlas-tiny-test"


@pytest.fixture(scope="session")
def tiny_open_clip_dir(tiny_model_dirs: dict[str, Path]) -> Path:
    return tiny_model_dirs["open_clip"]


@pytest.fixture(scope="session")
def tiny_arch(tiny_open_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny config registered as a named open_clip architecture, as a plugin author would."""
    import open_clip

    config = json.loads((tiny_open_clip_dir / "open_clip_config.json").read_text())
    config_dir = tmp_path_factory.mktemp("open-clip-configs")
    (config_dir / f"{TINY_ARCH}.json").write_text(json.dumps(config["model_cfg"]))
    open_clip.add_model_config(config_dir)
    return TINY_ARCH


def test_vectors_match_open_clip_itself(
    tiny_open_clip_dir: Path, tiny_embedders: dict[str, Embedder]
) -> None:
    import open_clip
    import torch

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tiny_open_clip_dir}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tiny_open_clip_dir}")
    pictures = sample_pictures(8)
    with torch.inference_mode():
        images = model.eval().encode_image(
            torch.stack([preprocess(p) for p in pictures]), normalize=True
        )
        texts = model.encode_text(tokenizer(SAMPLE_TEXTS), normalize=True)
    embedder = tiny_embedders["open_clip"]
    np.testing.assert_allclose(embedder.embed_images(pictures), images.numpy(), atol=1e-5)
    np.testing.assert_allclose(embedder.embed_texts(SAMPLE_TEXTS), texts.numpy(), atol=1e-5)


def test_our_preprocessor_matches_open_clips_transform_including_odd_crop_margins(
    tiny_open_clip_dir: Path, tiny_embedders: dict[str, Embedder]
) -> None:
    import open_clip

    _, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tiny_open_clip_dir}")
    ours = tiny_embedders["open_clip"].image_preprocessor()
    for picture in sample_pictures(8):
        np.testing.assert_allclose(ours(picture), preprocess(picture).numpy(), atol=1e-5)


def test_an_architecture_with_a_checkpoint_file_loads_the_same_weights(
    tiny_arch: str,
    tiny_open_clip_dir: Path,
    tiny_embedders: dict[str, Embedder],
    embedder_registry: Registry,
    embedder_settings: Settings,
) -> None:
    checkpoint = tiny_open_clip_dir / "open_clip_model.safetensors"
    embedder = embedder_registry.create_embedder(
        f"open_clip:{tiny_arch}/{checkpoint}", embedder_settings
    )
    assert embedder.id == f"open_clip:{tiny_arch}/{checkpoint.resolve()}"
    assert embedder.dim == TINY_PROJECTION_DIM
    pictures = sample_pictures(3)
    np.testing.assert_allclose(
        embedder.embed_images(pictures),
        tiny_embedders["open_clip"].embed_images(pictures),
        atol=1e-6,
    )


def test_an_architecture_alone_gives_random_weights_and_logs_a_warning(
    tiny_arch: str,
    embedder_registry: Registry,
    embedder_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="clipatlas.embedders.open_clip"):
        embedder = embedder_registry.create_embedder(f"open_clip:{tiny_arch}", embedder_settings)
    assert embedder.id == f"open_clip:{tiny_arch}"
    assert embedder.embed_texts(["a cat"]).shape == (1, TINY_PROJECTION_DIM)
    assert "random weights" in caplog.text


def test_the_local_dir_prefix_names_the_same_model_as_the_bare_directory(
    tiny_open_clip_dir: Path, embedder_registry: Registry, embedder_settings: Settings
) -> None:
    embedder = embedder_registry.create_embedder(
        f"open_clip:local-dir:{tiny_open_clip_dir}", embedder_settings
    )
    assert embedder.id == f"open_clip:{tiny_open_clip_dir.resolve()}"


@pytest.mark.parametrize(
    ("arg", "model_name", "pretrained", "spec_id"),
    [
        (
            "ViT-B-32/laion2b_s34b_b79k",
            "ViT-B-32",
            "laion2b_s34b_b79k",
            "open_clip:ViT-B-32/laion2b_s34b_b79k",
        ),
        (
            "hf-hub:timm/ViT-B-16-SigLIP",
            "hf-hub:timm/ViT-B-16-SigLIP",
            None,
            "open_clip:hf-hub:timm/ViT-B-16-SigLIP",
        ),
        (" ViT-B-32 ", "ViT-B-32", None, "open_clip:ViT-B-32"),
    ],
)
def test_specs_are_parsed_without_loading_anything(
    arg: str, model_name: str, pretrained: str | None, spec_id: str
) -> None:
    source = parse_open_clip_spec(arg)
    assert (source.model_name, source.pretrained, source.id) == (model_name, pretrained, spec_id)


def test_a_directory_without_config_or_weights_is_refused_before_loading(
    tiny_open_clip_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match=r"open_clip_config\.json"):
        parse_open_clip_spec(str(tmp_path))
    shutil.copy(tiny_open_clip_dir / "open_clip_config.json", tmp_path)
    with pytest.raises(ModelLoadError, match="no weights"):
        parse_open_clip_spec(str(tmp_path))


def test_a_missing_directory_or_checkpoint_raises_model_load_error_naming_the_path(
    tmp_path: Path, embedder_registry: Registry, embedder_settings: Settings
) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(ModelLoadError, match=str(missing)):
        embedder_registry.create_embedder(f"open_clip:{missing}", embedder_settings)
    with pytest.raises(ModelLoadError, match="no such checkpoint file"):
        embedder_registry.create_embedder(f"open_clip:ViT-B-32/{missing}.pt", embedder_settings)


def test_an_unknown_architecture_or_tag_raises_model_load_error(
    tiny_arch: str, embedder_registry: Registry, embedder_settings: Settings
) -> None:
    with pytest.raises(ModelLoadError, match="unknown open_clip architecture"):
        embedder_registry.create_embedder("open_clip:ViT-Q-99/openai", embedder_settings)
    with pytest.raises(ModelLoadError, match="local directory"):
        embedder_registry.create_embedder(f"open_clip:{tiny_arch}/no_such_tag", embedder_settings)


def test_a_missing_open_clip_package_says_which_extra_to_install(
    embedder_registry: Registry, embedder_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "open_clip", None)  # makes `import open_clip` fail
    with pytest.raises(ModelLoadError, match=r"pip install clipatlas\[open_clip\]"):
        embedder_registry.create_embedder("open_clip:ViT-B-32", embedder_settings)


def test_squash_is_supported_and_letterboxing_is_refused() -> None:
    cfg = {"size": (24, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear"}
    squash = preprocessor_from_open_clip({**cfg, "resize_mode": "squash"})
    assert (squash.resize_mode, squash.crop) == ("squash", (24, 32))
    with pytest.raises(ValueError, match="longest"):
        preprocessor_from_open_clip({**cfg, "resize_mode": "longest"})
    with pytest.raises(ValueError, match="shortest"):  # non-square shortest-edge crops
        preprocessor_from_open_clip({**cfg, "resize_mode": "shortest"})
