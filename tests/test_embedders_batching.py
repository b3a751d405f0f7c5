"""The automatic batch size: per-device policy, CUDA sizing from memory, out-of-memory back-off,
and an ingest whose groups match the model's batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from clipatlas import Atlas
from clipatlas.embedders import batching
from clipatlas.embedders.batching import (
    BatchSizer,
    embedder_batch_size,
    image_item_bytes,
    resolve_batch_size,
    size_from_memory,
)
from clipatlas.embedders.fake import FakeEmbedder
from clipatlas.embedders.runtime import embed_in_batches
from clipatlas.errors import ConfigError, EmbedderOutOfMemoryError
from clipatlas.settings import Settings
from tests.corpus import write_good_jpegs
from tests.tiny_models import build_tiny_hf_clip

MiB, GiB = 1024**2, 1024**3


def test_the_automatic_size_is_the_measured_default_on_cpu_and_fixed_on_mps() -> None:
    assert Settings().batch_size == 0  # automatic unless set
    assert resolve_batch_size(0, "cpu") == batching.CPU_DEFAULT == 32
    assert resolve_batch_size(0, "mps") == batching.MPS_DEFAULT
    assert resolve_batch_size(0, "cuda:1") == batching.CUDA_UNMEASURED  # no memory figures


def test_an_explicit_size_wins_on_every_device() -> None:
    for device in ("cpu", "mps", "cuda", "cuda:0"):
        assert resolve_batch_size(7, device, free_bytes=80 * GiB, item_bytes=MiB) == 7
    assert embedder_batch_size(FakeEmbedder(8), 7) == 7
    sizer = BatchSizer(7, "cuda", memory=_GpuMemory(free=80 * GiB))
    assert (sizer.size, sizer.automatic, sizer.measuring) == (7, False, False)


def test_cuda_size_is_free_memory_over_the_cost_of_one_item_capped_and_rounded() -> None:
    # 0.8 x 8 GiB / 50 MiB = 131 -> 128 (a multiple of 8)
    assert size_from_memory(8 * GiB, 50 * MiB) == 128
    assert resolve_batch_size(0, "cuda", free_bytes=8 * GiB, item_bytes=50 * MiB) == 128
    assert size_from_memory(80 * GiB, MiB) == batching.CUDA_CAP == 256
    assert size_from_memory(80 * GiB, MiB, cap=100) == 96
    assert size_from_memory(300 * MiB, 60 * MiB) == 4  # below 8: not rounded
    assert size_from_memory(10 * MiB, 60 * MiB) == 1  # never 0: the back-off decides then
    # the conservative first guess for a 224x224 crop: 1 KiB per input pixel
    assert image_item_bytes((224, 224)) == 1024 * 224 * 224
    guess = image_item_bytes((224, 224))
    assert resolve_batch_size(0, "cuda", free_bytes=6 * GiB, item_bytes=guess) == 96


def test_embedders_that_do_not_say_are_grouped_by_the_fallback() -> None:
    assert embedder_batch_size(FakeEmbedder(8)) == batching.FALLBACK == 32
    assert embedder_batch_size(None) == 32

    class Says:
        batch_size = 12

    assert embedder_batch_size(Says()) == 12


def test_a_negative_batch_size_is_refused() -> None:
    with pytest.raises(ValidationError, match="batch_size"):
        Settings(batch_size=-1)
    with pytest.raises(ConfigError, match="batch size"):
        BatchSizer(-1)


class _GpuMemory:
    """The CUDA memory counters of a GPU this machine does not have: ``free`` bytes available,
    and a batch of n items peaks at ``allocated + n * per_item`` (set by :func:`_on_gpu`)."""

    def __init__(self, free: int, per_item: int = 0) -> None:
        self.free, self.per_item, self.base = free, per_item, 3 * GiB  # weights already loaded
        self._peak, self.emptied = self.base, 0

    def available(self) -> int:
        return self.free

    def allocated(self) -> int:
        return self.base

    def reset_peak(self) -> None:
        self._peak = self.base

    def peak(self) -> int:
        return self._peak

    def empty_cache(self) -> None:
        self.emptied += 1

    def ran(self, n: int) -> None:
        self._peak = max(self._peak, self.base + n * self.per_item)


def _rows(n: int, dim: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)


def _model(
    seen: list[int], fits: Callable[[Any], bool] = lambda batch: True
) -> Callable[[Any], Any]:
    """A deterministic row-wise "model"; a batch that does not ``fit`` raises CUDA's OOM."""
    import torch

    weights = torch.from_numpy(np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32))

    def run(batch: Any) -> Any:
        seen.append(len(batch))
        if not fits(batch):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.from_numpy(np.asarray(batch)) @ weights

    return run


def test_the_first_cuda_batch_measures_the_cost_per_item_and_resizes() -> None:
    memory = _GpuMemory(free=8 * GiB, per_item=20 * MiB)
    sizer = BatchSizer(0, "cuda:0", item_bytes=image_item_bytes((224, 224)), memory=memory)
    assert sizer.size == 128  # 0.8 x 8 GiB / 49 MiB guessed -> 133 -> 128
    seen: list[int] = []
    model = _model(seen)

    def on_gpu(batch: Any) -> Any:
        memory.ran(len(batch))
        return model(batch)

    rows = _rows(600)
    out = embed_in_batches(rows, sizer, on_gpu, dim=3)
    assert sizer.measured_item_bytes == 20 * MiB
    assert seen == [128, 256, 216]  # 0.8 x 8 GiB / 20 MiB = 327 -> capped at 256
    np.testing.assert_allclose(out, embed_in_batches(rows, 600, model, dim=3), atol=1e-6)


def test_out_of_memory_halves_and_retries_the_same_rows_in_order_and_stays_small() -> None:
    rows = _rows(50)
    reference = embed_in_batches(rows, len(rows), _model([]), dim=3)  # one unbatched call
    seen: list[int] = []
    done: list[np.ndarray] = []
    model = _model(seen, fits=lambda batch: len(batch) <= 10)

    def recording(batch: Any) -> Any:
        out = model(batch)
        done.append(np.asarray(batch))  # reached only when the batch fitted
        return out

    sizer = BatchSizer(0, "cpu")
    out = embed_in_batches(rows, sizer, recording, dim=3)
    np.testing.assert_allclose(out, reference, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.concatenate(done), rows)  # each row once, in order
    assert seen == [32, 16, 8, 8, 8, 8, 8, 8, 2]
    assert (sizer.size, sizer.ceiling, sizer.backoffs) == (8, 8, 2)
    seen.clear()
    embed_in_batches(rows[:20], sizer, recording, dim=3)
    assert seen == [8, 8, 4]  # remembered: no new out-of-memory


def test_on_a_gpu_the_cache_is_emptied_and_a_measured_size_stays_under_the_ceiling() -> None:
    memory = _GpuMemory(free=8 * GiB, per_item=MiB)
    sizer = BatchSizer(0, "cuda", item_bytes=64 * MiB, memory=memory)
    seen: list[int] = []
    model = _model(seen, fits=lambda batch: len(batch) <= 40)

    def on_gpu(batch: Any) -> Any:
        memory.ran(len(batch))
        return model(batch)

    rows = _rows(200)
    out = embed_in_batches(rows, sizer, on_gpu, dim=3)
    assert seen[:3] == [96, 48, 24]  # 0.8 x 8 GiB / 64 MiB = 102 -> 96, OOM, OOM, fits
    assert memory.emptied == 2
    assert sizer.size == 24  # the measurement (256) does not lift it above the ceiling
    np.testing.assert_allclose(out, embed_in_batches(rows, 200, _model([]), dim=3), atol=1e-6)


def test_an_explicit_size_backs_off_on_out_of_memory_too() -> None:
    sizer = BatchSizer(12)
    seen: list[int] = []
    rows = _rows(12)
    out = embed_in_batches(rows, sizer, _model(seen, fits=lambda b: len(b) <= 6), dim=3)
    assert seen == [12, 6, 6] and sizer.size == 6 and out.shape == (12, 3)


def test_an_item_that_does_not_fit_even_alone_is_a_typed_error_naming_it() -> None:
    rows = _rows(20)
    rows[5] = 1e6  # the "huge picture": no batch holding it fits

    def fits(batch: Any) -> bool:
        return not bool((np.asarray(batch) == 1e6).any())

    seen: list[int] = []
    with pytest.raises(EmbedderOutOfMemoryError, match=r"pictures \[5\]") as info:
        embed_in_batches(rows, BatchSizer(0, what="pictures"), _model(seen, fits), dim=3)
    assert (info.value.start, info.value.stop, info.value.what) == (5, 6, "pictures")
    assert seen == [20, 10, 5, 5, 2, 1]  # 0-19, 0-9 fail; 0-4 fit; 5-9, 5-6, 5 fail


def test_other_runtime_errors_are_raised_not_taken_for_out_of_memory() -> None:
    import torch

    def broken(batch: Any) -> Any:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    sizer = BatchSizer(0)
    with pytest.raises(RuntimeError, match="shapes"):
        embed_in_batches(_rows(4), sizer, broken, dim=3)
    assert sizer.size == 32 and sizer.backoffs == 0
    assert batching.is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert batching.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated"))


# -- end to end: a real (tiny) CLIP through Atlas.ingest ---------------------------------------


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_hf_clip(tmp_path_factory.mktemp("tiny") / "clip")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pictures")
    write_good_jpegs(folder, 40, size=(64, 48))
    return folder


def _ingest(
    home: Path, model_dir: Path, folder: Path, batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[np.ndarray, list[int], list[int], int]:
    """Stored vectors, the sizes the Ingestor handed the embedder, the sizes the model got,
    and the embedder's resolved batch size."""
    settings = Settings(
        home=home, model=f"hf:{model_dir}", workers=-1, batch_size=batch_size,
        database_url=None, device="cpu", precision="fp32", vector_dtype="float32",
    )  # fmt: skip
    calls: list[int] = []
    model_batches: list[int] = []
    with Atlas.open("c", settings=settings) as atlas:
        embedder: Any = atlas.embedder()
        embed_pixels, features = embedder.embed_pixels, embedder._image_features

        def spy_pixels(pixels: np.ndarray) -> np.ndarray:
            calls.append(len(pixels))
            return embed_pixels(pixels)  # type: ignore[no-any-return]

        def spy_features(pixels: Any) -> Any:
            model_batches.append(len(pixels))
            return features(pixels)

        monkeypatch.setattr(embedder, "embed_pixels", spy_pixels)
        monkeypatch.setattr(embedder, "_image_features", spy_features)
        report = atlas.ingest(folder)
        assert report.stored == 40
        _, vectors = atlas.store.load_vectors(atlas.collection)
        return vectors, calls, model_batches, embedder.batch_size


def test_an_automatic_ingest_groups_like_the_model_and_stores_the_same_vectors_as_batch_7(
    tiny_clip: Path, pictures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auto, auto_calls, auto_model, auto_size = _ingest(
        tmp_path / "auto", tiny_clip, pictures, 0, monkeypatch
    )
    seven, seven_calls, seven_model, seven_size = _ingest(
        tmp_path / "seven", tiny_clip, pictures, 7, monkeypatch
    )
    assert (auto_size, seven_size) == (32, 7)
    assert auto_calls == auto_model == [32, 8]  # the Ingestor's groups are the model's batches
    assert seven_calls == seven_model == [7] * 5 + [5]
    np.testing.assert_allclose(auto, seven, atol=1e-5)
    assert auto.shape == (40, 16)


def test_an_ingest_with_an_embedder_that_does_not_say_groups_by_the_fallback(
    settings: Settings, pictures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    embed_pixels = FakeEmbedder.embed_pixels

    def spy(self: FakeEmbedder, pixels: np.ndarray) -> np.ndarray:
        calls.append(len(pixels))
        return embed_pixels(self, pixels)

    monkeypatch.setattr(FakeEmbedder, "embed_pixels", spy)
    with Atlas.open("c", settings=settings.model_copy(update={"batch_size": 0})) as atlas:
        assert atlas.ingest(pictures).stored == 40
    assert calls == [32, 8]
