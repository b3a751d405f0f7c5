"""Device choice, batching, model location and the cost of importing the embedder plugins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipatlas.embedders import locate, runtime
from clipatlas.embedders.base import ImagePreprocessor
from clipatlas.embedders.locate import locate_model
from clipatlas.errors import ConfigError, EmbedderError, ModelLoadError

HEAVY_MODULES = ("torch", "transformers", "open_clip", "sentence_transformers")


def _pretend_available(monkeypatch: pytest.MonkeyPatch, *devices: str) -> None:
    for name in ("cuda", "mps"):
        monkeypatch.setitem(runtime._AVAILABLE, name, lambda name=name: name in devices)


@pytest.mark.parametrize(
    ("available", "expected"),
    [((), "cpu"), (("mps",), "mps"), (("cuda", "mps"), "cuda")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(
    available: tuple[str, ...], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pretend_available(monkeypatch, *available)
    assert runtime.resolve_device("auto") == expected


def test_an_explicit_device_is_kept_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_available(monkeypatch, "cuda")
    assert runtime.resolve_device("CUDA:1") == "cuda:1"
    assert runtime.resolve_device("cpu") == "cpu"


def test_an_unavailable_or_unknown_device_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _pretend_available(monkeypatch)
    with pytest.raises(ConfigError, match="not available"):
        runtime.resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        runtime.resolve_device("tpu")


def test_batches_are_stacked_normalised_and_never_larger_than_the_batch_size() -> None:
    import torch

    seen: list[int] = []

    def run(batch: list[float]) -> torch.Tensor:
        seen.append(len(batch))
        return torch.tensor([[x, 1.0] for x in batch])

    out = runtime.embed_in_batches([3.0, 0.0, 1.0, 2.0, 5.0], 2, run, dim=2)
    assert seen == [2, 2, 1]
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert runtime.embed_in_batches([], 2, run, dim=7).shape == (0, 7)


def test_a_model_returning_the_wrong_width_is_an_embedder_error() -> None:
    import torch

    with pytest.raises(EmbedderError, match="expected"):
        runtime.embed_in_batches([1, 2], 8, lambda batch: torch.ones(len(batch), 3), dim=4)


def test_features_are_found_in_a_tensor_a_model_output_or_a_tuple() -> None:
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    features = torch.ones(2, 4)
    assert runtime.features_tensor(features) is features
    output = BaseModelOutputWithPooling(
        last_hidden_state=torch.zeros(2, 3, 5), pooler_output=features
    )
    assert runtime.features_tensor(output) is features
    assert runtime.features_tensor((features,)) is features
    with pytest.raises(EmbedderError):
        runtime.features_tensor({"no": "features"})


def test_a_hub_id_stays_as_given_and_a_directory_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = locate_model("hf", " openai/clip-vit-base-patch32 ")
    assert (hub.spec, hub.local) == ("hf:openai/clip-vit-base-patch32", False)
    (tmp_path / "clip").mkdir()
    monkeypatch.chdir(tmp_path)
    local = locate_model("hf", "clip")
    assert (local.spec, local.source, local.local) == (
        f"hf:{tmp_path.resolve() / 'clip'}",
        str(tmp_path.resolve() / "clip"),
        True,
    )


@pytest.mark.parametrize("arg", ["/no/such/model", "./missing", "~/missing-model-dir", "a/b/c"])
def test_arguments_that_look_like_paths_but_do_not_exist_are_refused_at_once(arg: str) -> None:
    with pytest.raises(ModelLoadError, match="no such directory"):
        locate_model("hf", arg)


class _Attempts:
    """A fake loader: records each ``local_files_only`` it was called with."""

    def __init__(self, cached: bool) -> None:
        self.cached, self.calls = cached, []  # type: list[bool]

    def __call__(self, local_files_only: bool) -> str:
        self.calls.append(local_files_only)
        if local_files_only and not self.cached:
            raise OSError("not in the cache")
        return "model"


def _no_probe() -> bool:
    raise AssertionError("the hub must not be probed")


def test_a_cached_hub_model_loads_without_touching_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(locate, "hub_reachable", _no_probe)
    attempts = _Attempts(cached=True)
    assert locate_model("hf", "org/model").load(attempts) == "model"
    assert attempts.calls == [True]


def test_with_hf_hub_offline_the_hub_is_never_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(locate, "hub_reachable", _no_probe)
    attempts = _Attempts(cached=False)
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set"):
        locate_model("hf", "org/model").load(attempts)
    assert attempts.calls == [True]


def test_an_uncached_model_is_downloaded_only_when_the_hub_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(locate, "hub_reachable", lambda: True)
    attempts = _Attempts(cached=False)
    assert locate_model("hf", "org/model").load(attempts) == "model"
    assert attempts.calls == [True, False]

    monkeypatch.setattr(locate, "hub_reachable", lambda: False)
    attempts = _Attempts(cached=False)
    with pytest.raises(ModelLoadError, match="unreachable; pass a local path"):
        locate_model("hf", "org/model").load(attempts)
    assert attempts.calls == [True]


def test_problems_no_download_can_fix_are_not_retried_online(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(locate, "hub_reachable", _no_probe)
    calls: list[bool] = []

    def refuse(local_files_only: bool) -> None:
        calls.append(local_files_only)
        raise ModelLoadError("hf:org/model", "not a CLIP-family model")

    with pytest.raises(ModelLoadError, match="not a CLIP-family"):
        locate_model("hf", "org/model").load(refuse)
    assert calls == [True]


def test_the_hub_probe_fails_fast_without_a_route_and_defers_to_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_route(*args: object, **kwargs: object) -> None:
        raise OSError("Name or service not known")

    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(locate.socket, "create_connection", no_route)
    assert not locate.hub_reachable()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert locate.hub_reachable()


def test_importing_the_registry_and_embedder_plugins_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from clipatlas.registry import Registry, DEFAULT_PLUGINS\n"
        "r = Registry()\n"
        "[r.load(p) for p in DEFAULT_PLUGINS if p.startswith('clipatlas.embedders.')]\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_round_crop_offsets_follow_torchvision_and_floor_offsets_follow_transformers() -> None:
    # 35x32 -> short side 32, long side 35: a 3-pixel margin, split 2+1 (round) or 1+2 (floor)
    ramp = np.tile(np.arange(35, dtype=np.uint8)[:, None, None] * 7, (1, 32, 3))
    picture = Image.fromarray(ramp)
    common = {"size": 32, "crop": (32, 32), "mean": (0.0,) * 3, "std": (1.0,) * 3}
    floor = ImagePreprocessor(**common)(picture)  # type: ignore[arg-type]
    rounded = ImagePreprocessor(crop_offset="round", **common)(picture)  # type: ignore[arg-type]
    assert floor[0, 0, 0] * 255 == pytest.approx(7 * 1, abs=1e-3)
    assert rounded[0, 0, 0] * 255 == pytest.approx(7 * 2, abs=1e-3)


def test_the_long_side_is_truncated_like_transformers_and_torchvision() -> None:
    # 100x67 at short side 32: 32 * 100 / 67 = 47.76 -> 47 (rounding would give 48)
    seen: list[tuple[int, int]] = []
    picture = Image.new("RGB", (100, 67))
    original_resize = Image.Image.resize

    def spy(
        self: Image.Image, size: tuple[int, int], *args: object, **kwargs: object
    ) -> Image.Image:
        seen.append(tuple(size))  # type: ignore[arg-type]
        return original_resize(self, size, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image.Image, "resize", spy)
        ImagePreprocessor(size=32, crop=(32, 32), mean=(0.0,) * 3, std=(1.0,) * 3)(picture)
    assert seen == [(47, 32)]
