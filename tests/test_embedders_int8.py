"""The int8 precision: image tower exported to ONNX, quantised, cached, checked against fp32."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipatlas import Atlas
from clipatlas.embedders import onnx_int8
from clipatlas.embedders import precision as precision_mod
from clipatlas.embedders.precision import resolve_precision
from clipatlas.errors import ConfigError
from clipatlas.registry import Registry
from clipatlas.settings import Settings
from tests.corpus import write_good_jpegs

pytest_plugins = ("tests.embedder_fixtures",)

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


def _photos() -> list[Image.Image]:
    from skimage import data

    arrays = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.camera()]
    return [Image.fromarray(a).convert("RGB") for a in arrays]


def _settings(base: Settings, home: Path, precision: str, batch_size: int = 8) -> Settings:
    return base.model_copy(update={"home": home, "precision": precision, "batch_size": batch_size})


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return _photos()


@pytest.mark.parametrize("name", ["hf-clip", "open_clip"])
def test_int8_vectors_agree_with_fp32_on_real_photos(
    name: str,
    tmp_path: Path,
    photos: list[Image.Image],
    embedder_registry: Registry,
    embedder_settings: Settings,
    tiny_specs: dict[str, str],
) -> None:
    exact = embedder_registry.create_embedder(
        tiny_specs[name], _settings(embedder_settings, tmp_path, "fp32")
    )
    fast = embedder_registry.create_embedder(
        tiny_specs[name], _settings(embedder_settings, tmp_path, "int8", batch_size=2)
    )
    reference = exact.embed_images(photos)
    first = fast.embed_images(photos)  # first batch checked against fp32, then int8 only
    again = fast.embed_images(photos)
    guard = fast.precision  # type: ignore[attr-defined]
    assert guard.precision == "int8" and guard.fallback is None
    assert guard.agreement is not None and guard.agreement >= 0.99
    for got in (first, again):
        assert got.dtype == np.float32 and got.shape == reference.shape
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert np.sum(got * reference, axis=1).min() >= 0.99
    assert not np.allclose(again, reference, atol=1e-6), "the int8 tower really ran"
    tower = fast._int8_tower  # type: ignore[attr-defined]
    assert tower is not None and tower.path.is_file()
    assert tower.path.is_relative_to(tmp_path / "cache" / "onnx")
    texts = ["a photo of a cat", "a rocket"]  # text stays fp32 torch
    np.testing.assert_allclose(fast.embed_texts(texts), exact.embed_texts(texts), atol=1e-6)


def test_the_exported_tower_is_cached_and_reused(
    tmp_path: Path,
    photos: list[Image.Image],
    embedder_registry: Registry,
    embedder_settings: Settings,
    tiny_specs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(embedder_settings, tmp_path, "int8")
    first = embedder_registry.create_embedder(tiny_specs["hf-clip"], settings)
    vectors = first.embed_images(photos)
    tower = first.int8_tower()  # type: ignore[attr-defined]
    assert tower.exported and tower.seconds > 0
    mtime = tower.path.stat().st_mtime_ns
    assert [p.name for p in tower.path.parent.iterdir()] == [onnx_int8.MODEL_FILE]  # no temps

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached int8 model should have been reused")

    monkeypatch.setattr(onnx_int8, "_export_and_quantise", no_export)
    second = embedder_registry.create_embedder(tiny_specs["hf-clip"], settings)
    np.testing.assert_allclose(second.embed_images(photos), vectors, atol=1e-6)
    reused = second.int8_tower()  # type: ignore[attr-defined]
    assert not reused.exported and reused.path == tower.path
    assert reused.path.stat().st_mtime_ns == mtime

    # different weights -> a different cache key (so a retrained model is exported again)
    model = second._model  # type: ignore[attr-defined]
    crop = second.image_preprocessor().crop
    before = onnx_int8.model_fingerprint(model, crop)
    with __import__("torch").no_grad():
        model.visual_projection.weight[0, 0] += 0.5
    assert onnx_int8.model_fingerprint(model, crop) != before


def test_poor_int8_agreement_falls_back_to_fp32_for_good(
    tmp_path: Path,
    photos: list[Image.Image],
    embedder_registry: Registry,
    embedder_settings: Settings,
    tiny_specs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(precision_mod, "MIN_AGREEMENT", 1.01)  # nothing can pass
    exact = embedder_registry.create_embedder(
        tiny_specs["hf-clip"], _settings(embedder_settings, tmp_path, "fp32")
    )
    guarded = embedder_registry.create_embedder(
        tiny_specs["hf-clip"], _settings(embedder_settings, tmp_path, "int8")
    )
    reference = exact.embed_images(photos)
    with caplog.at_level(logging.WARNING, logger=precision_mod.__name__):
        np.testing.assert_allclose(guarded.embed_images(photos), reference, atol=1e-6)
    guard = guarded.precision  # type: ignore[attr-defined]
    assert guard.precision == "fp32"
    assert guard.agreement is not None and guard.agreement < 1.01
    assert guard.fallback is not None and "int8 agrees with fp32 only to cosine" in guard.fallback
    assert "using fp32" in caplog.text and "int8" in caplog.text
    np.testing.assert_allclose(guarded.embed_images(photos), reference, atol=1e-6)


def test_a_failing_export_falls_back_to_fp32_with_the_reason(
    tmp_path: Path,
    photos: list[Image.Image],
    embedder_registry: Registry,
    embedder_settings: Settings,
    tiny_specs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    def broken_export(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    exact = embedder_registry.create_embedder(
        tiny_specs["hf-clip"], _settings(embedder_settings, tmp_path, "fp32")
    )
    guarded = embedder_registry.create_embedder(
        tiny_specs["hf-clip"], _settings(embedder_settings, tmp_path, "int8")
    )
    np.testing.assert_allclose(guarded.embed_images(photos), exact.embed_images(photos), atol=1e-6)
    guard = guarded.precision  # type: ignore[attr-defined]
    assert guard.precision == "fp32"
    assert guard.fallback is not None and "aten::frobnicate" in guard.fallback
    assert tiny_specs["hf-clip"] in guard.fallback
    leftovers = list((tmp_path / "cache" / "onnx").rglob("*"))
    assert [p for p in leftovers if p.is_file()] == []


def test_without_onnxruntime_int8_is_a_clear_config_error(
    tmp_path: Path,
    embedder_registry: Registry,
    embedder_settings: Settings,
    tiny_specs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    with pytest.raises(ConfigError, match=r"pip install 'clipatlas\[onnx\]'"):
        embedder_registry.create_embedder(
            tiny_specs["hf-clip"], _settings(embedder_settings, tmp_path, "int8")
        )
    # the other precisions do not need it
    embedder_registry.create_embedder(
        tiny_specs["hf-clip"], _settings(embedder_settings, tmp_path, "fp32")
    )


def test_int8_is_explicit_and_cpu_only() -> None:
    assert Settings(precision="int8").precision == "int8"
    assert resolve_precision("int8", "cpu") == "int8"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")  # auto never picks int8
    with pytest.raises(ConfigError, match="CPU only"):
        resolve_precision("int8", "cuda")


def test_ingest_and_search_with_int8_end_to_end(
    tmp_path: Path, settings: Settings, tiny_specs: dict[str, str]
) -> None:
    files = write_good_jpegs(tmp_path / "pictures", 6, size=(96, 64))
    int8 = settings.model_copy(update={"model": tiny_specs["hf-clip"], "precision": "int8"})
    with Atlas.open("photos", settings=int8) as atlas:
        report = atlas.ingest(tmp_path / "pictures")
        assert report.stored == len(files)
        guard = atlas.embedder().precision  # type: ignore[attr-defined]
        assert guard.precision == "int8" and guard.agreement >= 0.99
        hits = atlas.search_image(files[3], k=3)
    assert Path(hits[0].path).name == files[3].name
    assert list((settings.home / "cache" / "onnx").rglob(onnx_int8.MODEL_FILE))
