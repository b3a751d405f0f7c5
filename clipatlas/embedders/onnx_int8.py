"""The ``int8`` precision: the image tower exported to ONNX and quantised, run by ONNX Runtime.

Needs the optional extra: ``pip install 'clipatlas[onnx]'`` (``onnxruntime`` and ``onnx``).

The part of a model that turns normalised pixels into image features (what
``TorchImageTextEmbedder._image_features`` computes) is exported once with ``torch.onnx``,
quantised with ONNX Runtime's dynamic int8 quantisation (int8 weights, activations quantised per
batch at run time) and cached on disk under ``<home>/cache/onnx/<model>-<fingerprint>/``. The
fingerprint hashes the model's weights and structure (and its config, when it has one) and the
crop size, so a changed model is exported again and an unchanged one is loaded in a second.
Text stays in fp32 torch. The agreement with fp32 is checked like bf16's, by
:class:`clipatlas.embedders.precision.PrecisionGuard`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipatlas.errors import ConfigError, OnnxExportError

if TYPE_CHECKING:
    import torch

__all__ = [
    "INSTALL_HINT",
    "Int8ImageTower",
    "check_onnx_installed",
    "load_int8_tower",
    "model_fingerprint",
]

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "precision 'int8' needs ONNX Runtime, which is not installed: "
    "pip install 'clipatlas[onnx]' (or choose precision fp32, bf16 or auto)"
)
FORMAT = "3"  # bump to re-export every cached model (export recipe changed)
OPSET = 17
MODEL_FILE = "image-int8.onnx"
# Only the matrix products are quantised. A ViT's compute is in them; its one convolution (the
# patch embedding) would become ConvInteger with int8 weights, which onnxruntime's CPU provider
# cannot run in onnxruntime 1.17 to 1.23 at least (NOT_IMPLEMENTED on load), so it stays fp32.
QUANTISED_OPS = ["MatMul", "Gemm"]
# Weights use 7 of their 8 bits. On x86 CPUs without VNNI (AVX2, AVX-512 without VNNI)
# onnxruntime multiplies uint8 activations by int8 weights with VPMADDUBSW, whose 16-bit
# pair sums saturate at full range: a tiny open_clip tower agreed with fp32 only to cosine
# 0.966 on such a CPU (0.9998 with 7 bits; a ViT-B/32-sized tower 0.9993, at the same speed).
REDUCE_RANGE = True
_EXAMPLE_BATCH = 2  # any batch works afterwards: the batch axis is exported as dynamic


def check_onnx_installed() -> None:
    """:class:`ConfigError` naming the ``onnx`` extra unless onnxruntime and onnx import."""
    for module in ("onnxruntime", "onnx"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(INSTALL_HINT)


def model_fingerprint(model: torch.nn.Module, crop: tuple[int, int]) -> str:
    """A hash of everything the exported graph depends on: weights, structure, config, size."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{FORMAT}|{OPSET}|{crop}|{type(model).__qualname__}|".encode())
    digest.update(str(model).encode())  # module tree: layer kinds, activations, shapes
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        raw = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        digest.update(raw.numpy().data)
    return digest.hexdigest()


def _slug(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("_")[-60:] or "model"


class _Tower:
    """A torch module around an embedder's image-feature function, for tracing."""

    @staticmethod
    def build(model: torch.nn.Module, features: Callable[[Any], Any]) -> torch.nn.Module:
        import torch

        class ImageTower(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model  # registered, so its weights become graph initialisers

            def forward(self, pixels: torch.Tensor) -> Any:
                return features(pixels)

        return ImageTower().eval()


class _DropPreprocessingHint(logging.Filter):
    """onnxruntime's quantiser logs a pre-processing hint on the root logger on every call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")


def _export_and_quantise(
    model_id: str,
    model: torch.nn.Module,
    features: Callable[[Any], Any],
    crop: tuple[int, int],
    target: Path,
) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    fp32 = target.with_name(f".{target.stem}.{os.getpid()}.fp32.onnx")
    partial = target.with_name(f".{target.stem}.{os.getpid()}.int8.onnx")
    example = torch.zeros((_EXAMPLE_BATCH, 3, *crop), dtype=torch.float32)
    hint = _DropPreprocessingHint()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # the TorchScript exporter is deprecated in favour of torch.export, which needs
            # onnxscript; tracing warnings are about shape checks the fixed crop size makes safe
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
            # nn.MultiheadAttention's fused inference kernel (open_clip) has no ONNX export
            torch.backends.mha.set_fastpath_enabled(False)
            torch.onnx.export(
                _Tower.build(model, features),
                (example,),
                str(fp32),
                dynamo=False,
                input_names=["pixels"],
                output_names=["features"],
                dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
                opset_version=OPSET,
            )
        logging.getLogger().addFilter(hint)
        try:
            quantize_dynamic(
                str(fp32),
                str(partial),
                op_types_to_quantize=QUANTISED_OPS,
                weight_type=QuantType.QInt8,
                reduce_range=REDUCE_RANGE,
            )
        finally:
            logging.getLogger().removeFilter(hint)
        os.replace(partial, target)  # atomic: a concurrent loader sees all or nothing
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]  # not the graph dump
        raise OnnxExportError(model_id, f"{type(exc).__name__}: {first_line}") from exc
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for leftover in (fp32, partial, fp32.with_name(fp32.name + ".data")):
            leftover.unlink(missing_ok=True)


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Int8ImageTower:
    """An int8 ONNX Runtime session computing image features from normalised pixels."""

    def __init__(self, model_id: str, path: Path, exported: bool, seconds: float) -> None:
        import onnxruntime as ort

        self.path = path
        self.exported = exported  # False when the cached file was reused
        self.seconds = seconds  # export + quantisation time (0 when reused)
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            # as for torch's OpenMP threads (set by the CLI): idle threads sleep instead of
            # spinning, so decode workers on the same cores are not starved
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise OnnxExportError(model_id, f"cannot load {path}: {exc}") from exc

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        import torch

        array = np.ascontiguousarray(pixels.detach().to("cpu", torch.float32).numpy())
        (features,) = self._session.run(["features"], {"pixels": array})
        return torch.from_numpy(np.asarray(features, dtype=np.float32))


def load_int8_tower(
    model_id: str,
    model: torch.nn.Module,
    features: Callable[[Any], Any],
    crop: tuple[int, int],
    cache_root: Path,
) -> Int8ImageTower:
    """The cached int8 tower of ``model`` (exported and quantised first when not cached).

    ``features`` maps a normalised ``(N, 3, *crop)`` float32 tensor to ``(N, dim)`` features,
    using ``model``'s weights. Raises :class:`OnnxExportError` when export or loading fails.
    """
    check_onnx_installed()
    folder = cache_root / f"{_slug(model_id)}-{model_fingerprint(model, crop)}"
    target = folder / MODEL_FILE
    if target.is_file():
        log.info("%s: int8 image tower from %s", model_id, target)
        return Int8ImageTower(model_id, target, exported=False, seconds=0.0)
    start = time.perf_counter()
    log.info("%s: exporting the image tower to ONNX and quantising it to int8", model_id)
    _export_and_quantise(model_id, model, features, crop, target)
    seconds = time.perf_counter() - start
    log.info("%s: int8 image tower ready in %.1f s (%s)", model_id, seconds, target)
    return Int8ImageTower(model_id, target, exported=True, seconds=seconds)
