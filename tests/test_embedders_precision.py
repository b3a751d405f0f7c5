"""bf16 autocast for image embedding: automatic choice, agreement check, fp32 fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipatlas.embedders import precision as precision_mod
from clipatlas.embedders.precision import PrecisionGuard, resolve_precision
from clipatlas.errors import ConfigError
from clipatlas.registry import Registry
from clipatlas.settings import Settings
from tests.tiny_models import sample_pictures

pytest_plugins = ("tests.embedder_fixtures",)


def _embedder(registry: Registry, settings: Settings, directory: Path, precision: str):  # type: ignore[no-untyped-def]
    return registry.create_embedder(
        f"hf:{directory}", settings.model_copy(update={"precision": precision})
    )


def test_auto_picks_bf16_only_where_the_hardware_runs_it_natively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision_mod, "_cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision_mod, "_cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "mps") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ConfigError, match="unknown precision"):
        resolve_precision("fp8", "cpu")


def test_bf16_vectors_agree_with_fp32_and_the_agreement_is_recorded(
    embedder_registry: Registry, embedder_settings: Settings, tiny_model_dirs: dict[str, Path]
) -> None:
    pictures = sample_pictures(6)
    exact = _embedder(embedder_registry, embedder_settings, tiny_model_dirs["hf-clip"], "fp32")
    fast = _embedder(embedder_registry, embedder_settings, tiny_model_dirs["hf-clip"], "bf16")
    assert fast.precision.agreement is None
    reference = exact.embed_images(pictures)
    first = fast.embed_images(pictures)  # first batch: checked against fp32
    again = fast.embed_images(pictures)  # later batches: bf16 only
    assert fast.precision.precision == "bf16"
    assert fast.precision.agreement is not None and fast.precision.agreement > 0.99
    for got in (first, again):
        cosine = np.sum(got * reference, axis=1)
        assert cosine.min() > 0.99
    assert not np.array_equal(again, reference), "bf16 really ran (vectors differ slightly)"


def test_poor_bf16_agreement_falls_back_to_fp32_for_good(
    embedder_registry: Registry,
    embedder_settings: Settings,
    tiny_model_dirs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision_mod, "MIN_AGREEMENT", 1.01)  # nothing can pass
    pictures = sample_pictures(4)
    exact = _embedder(embedder_registry, embedder_settings, tiny_model_dirs["hf-clip"], "fp32")
    guarded = _embedder(embedder_registry, embedder_settings, tiny_model_dirs["hf-clip"], "bf16")
    reference = exact.embed_images(pictures)
    np.testing.assert_allclose(guarded.embed_images(pictures), reference, atol=1e-6)
    assert guarded.precision.precision == "fp32"
    np.testing.assert_allclose(guarded.embed_images(pictures), reference, atol=1e-6)


def test_text_is_always_embedded_in_fp32(
    embedder_registry: Registry, embedder_settings: Settings, tiny_model_dirs: dict[str, Path]
) -> None:
    texts = ["a photo of a cat", "stock market report"]
    exact = _embedder(embedder_registry, embedder_settings, tiny_model_dirs["hf-clip"], "fp32")
    fast = _embedder(embedder_registry, embedder_settings, tiny_model_dirs["hf-clip"], "bf16")
    np.testing.assert_allclose(fast.embed_texts(texts), exact.embed_texts(texts), atol=1e-6)


def test_the_guard_checks_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    calls: list[int] = []

    def fn(batch: torch.Tensor) -> torch.Tensor:
        calls.append(len(batch))
        return batch.float()

    guard = PrecisionGuard("test", "bf16", "cpu")
    guard.run(fn, torch.ones(20, 4))
    guard.run(fn, torch.ones(20, 4))
    assert calls == [precision_mod.CHECK_ITEMS, 20, 20]
    assert guard.agreement == pytest.approx(1.0)
