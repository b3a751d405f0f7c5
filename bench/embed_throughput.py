"""Images/second of the whole ingest pipeline vs. the model alone vs. a naive loop.

    .venv/bin/python bench/embed_throughput.py [--images 320] [--batch-size 32]
    .venv/bin/python bench/embed_throughput.py --batch-sizes 8 16 32 64 [--images 96]

All three are measured in one run on the same generated 512x768 JPEGs with a random-weight
ViT-B/32-sized HF CLIP (random weights cost exactly what real ones do):

* pipeline:   Atlas.ingest on the folder (decode workers + batched embedding + SQLite store)
* model-only: embedder.embed_pixels over pre-decoded, pre-processed arrays (the ceiling)
* naive:      for each file: PIL open -> the model's own processor -> model, one at a time

Targets on a 2-core machine: pipeline >= 85% of model-only, and >= 3x the naive loop. The
model-only and pipeline rows are measured for the default precision (``auto``: bf16 where the
CPU has native bf16, else fp32), for fp32 and, when the ``onnx`` extra is installed, for int8
(ONNX Runtime; its one-off export + quantisation happens in the model-only warm-up and is
reported apart, the pipeline reuses the cached int8 model); ``--precisions`` picks the list.
The naive loop is fp32, as such code is written. Appends nothing; prints a Markdown block for
bench/RESULTS.md (with the machine load before and after the run).

``--batch-sizes`` measures only the model-only fp32 rate at each batch size (and at the
automatic size, ``batch_size=0``), each size twice in ABBA order to even out a drifting load:
the measurement behind the CPU default in ``clipatlas/embedders/batching.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# the same process set-up as the `clipatlas` command (see clipatlas/cli/app.py:main)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipatlas import Atlas
from clipatlas.registry import default_registry
from clipatlas.settings import Settings
from tests.corpus import write_good_jpegs
from tests.tiny_models import build_vit_b32_sized_hf_clip


def _model_only(embedder, files: list[Path], batch: int) -> float:  # type: ignore[no-untyped-def]
    from PIL import Image

    prep = embedder.image_preprocessor()
    pixels = np.stack([prep.resize_crop(Image.open(f).convert("RGB")) for f in files])
    embedder.embed_pixels(pixels[:batch])  # warm-up
    start = time.perf_counter()
    embedder.embed_pixels(pixels)
    return len(files) / (time.perf_counter() - start)


def _naive(model_dir: Path, files: list[Path]) -> float:
    import torch
    from PIL import Image
    from transformers import AutoProcessor, CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    with torch.inference_mode():
        start = time.perf_counter()
        for f in files:
            inputs = processor(images=Image.open(f), return_tensors="pt")
            model.get_image_features(**inputs)
    return len(files) / (time.perf_counter() - start)


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _default_precisions() -> str:
    import importlib.util

    return "auto,fp32" + (",int8" if importlib.util.find_spec("onnxruntime") else "")


def _pipeline(
    model_dir: Path, folder: Path, home: Path, batch: int, precision: str
) -> tuple[float, int]:
    settings = Settings(
        home=home, model=f"hf:{model_dir}", batch_size=batch, workers=0, precision=precision
    )
    with Atlas.open("bench", settings=settings) as atlas:
        atlas.embedder()  # load the model outside the timed region, like model-only
        start = time.perf_counter()
        report = atlas.ingest(folder)
        seconds = time.perf_counter() - start
    return report.stored / seconds, report.stored


def _sweep(sizes: list[int], images: int) -> None:
    """Model-only fp32 images/s per batch size (0 = automatic), ABBA order."""
    load_before = _load()
    rates: dict[int, list[float]] = {size: [] for size in sizes}
    resolved: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="clipatlas-bench-") as tmp:
        work = Path(tmp)
        model_dir = build_vit_b32_sized_hf_clip(work / "vit-b32")
        files = write_good_jpegs(work / "jpegs", images, size=(512, 768))
        for size in [*sizes, *reversed(sizes)]:
            settings = Settings(home=work / "home", batch_size=size, precision="fp32")
            embedder = default_registry().create_embedder(f"hf:{model_dir}", settings)
            resolved[size] = embedder.batch_size  # type: ignore[attr-defined]
            rates[size].append(_model_only(embedder, files, min(resolved[size], 16)))
            del embedder
    load_after = _load()

    import torch

    print(f"### embed_throughput batch sizes ({time.strftime('%Y-%m-%d')})\n")
    print(f"`{' '.join(['.venv/bin/python', 'bench/embed_throughput.py', *sys.argv[1:]])}`  ")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), model only, fp32, "
        f"{images} pre-decoded crops per run, ViT-B/32-sized random weights, each size run "
        f"twice (ABBA); load average {load_before} before, {load_after} after\n"
    )
    print("| batch size | images/s (run 1, run 2) | mean |")
    print("|---:|---:|---:|")
    for size in sizes:
        label = f"0 (automatic: {resolved[size]})" if size == 0 else str(size)
        runs = ", ".join(f"{r:.1f}" for r in rates[size])
        print(f"| {label} | {runs} | {sum(rates[size]) / len(rates[size]):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=None, help="1000; 96 with --batch-sizes")
    parser.add_argument("--naive-images", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precisions", default=_default_precisions())
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", help="only sweep model-only fp32 over these sizes"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.batch_sizes:
        _sweep(args.batch_sizes, args.images or 96)
        return
    args.images = args.images or 1000
    load_before = _load()

    with tempfile.TemporaryDirectory(prefix="clipatlas-bench-") as tmp:
        work = Path(tmp)
        model_dir = build_vit_b32_sized_hf_clip(work / "vit-b32")
        files = write_good_jpegs(work / "jpegs", args.images, size=(512, 768))
        rows = {}
        notes = []
        for precision in args.precisions.split(","):
            # model-only and pipeline share a home, so the pipeline reuses the int8 cache
            settings = Settings(
                home=work / f"home-{precision}", batch_size=args.batch_size, precision=precision
            )
            embedder = default_registry().create_embedder(f"hf:{model_dir}", settings)
            model_only = _model_only(embedder, files, args.batch_size)
            guard = embedder.precision  # type: ignore[attr-defined]
            resolved = guard.precision
            if guard.agreement is not None:
                notes.append(
                    f"{resolved}: min cosine with fp32 on the first 8 pictures "
                    f"{guard.agreement:.4f}"
                )
            if guard.fallback:
                notes.append(f"{precision}: fell back to fp32: {guard.fallback}")
            if resolved == "int8":
                tower = embedder.int8_tower()  # type: ignore[attr-defined]
                size = tower.path.stat().st_size / 1e6
                notes.append(
                    f"int8: ONNX export + dynamic quantisation {tower.seconds:.1f} s once "
                    f"(cached, {size:.0f} MB), not in the timed rows"
                )
            pipeline, stored = _pipeline(
                model_dir, work / "jpegs", work / f"home-{precision}", args.batch_size, precision
            )
            label = resolved if precision in (resolved, "auto") else f"{precision}->{resolved}"
            rows[label] = (model_only, pipeline, stored)
        naive = _naive(model_dir, files[: args.naive_images])
    load_after = _load()

    import torch

    print(f"### embed_throughput ({time.strftime('%Y-%m-%d')})\n")
    print(f"`{' '.join(['.venv/bin/python', 'bench/embed_throughput.py', *sys.argv[1:]])}`  ")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"{args.images} JPEGs 512x768, ViT-B/32-sized random weights, batch {args.batch_size}; "
        f"load average {load_before} before, {load_after} after\n"
    )
    print("| precision | method | images/s | ratio |")
    print("|---|---|---:|---:|")
    met = []
    for precision, (model_only, pipeline, stored) in rows.items():
        print(f"| {precision} | model only (pre-decoded crops) | {model_only:.1f} | 1.00 |")
        print(
            f"| {precision} | pipeline (decode + embed + store, {stored} stored) | "
            f"{pipeline:.1f} | {pipeline / model_only:.2f} of model-only, "
            f"{pipeline / naive:.1f}x naive |"
        )
        met.append((precision, pipeline >= 0.85 * model_only, pipeline >= 3 * naive))
    print(
        f"| fp32 | naive loop (open + processor + model, 1 by 1, {args.naive_images} images) | "
        f"{naive:.1f} | |"
    )
    print()
    for note in notes:
        print(f"{note}  ")
    print()
    for precision, share, speedup in met:
        print(
            f"{precision}: pipeline >= 0.85 x model-only: {'yes' if share else 'NO'}; "
            f">= 3x naive: {'yes' if speedup else 'NO'}"
        )


if __name__ == "__main__":
    main()
