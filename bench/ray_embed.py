"""Ray local mode vs. a single-process ingest of the same folder: identical results, time.

    .venv/bin/python bench/ray_embed.py [--images 200] [--model vit|fake]

Both runs embed the same generated JPEGs (512x768) into two collections with the same settings
(fp32, so the bf16 agreement check cannot pick a different precision per process), then every
stored row and every stored vector is compared. ``vit`` is a random-weight CLIPModel with
ViT-B/32's vision tower (the real cost of the default model); ``fake`` is the deterministic
``fake:64`` embedder. Ray start-up is timed apart from the run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipatlas import Atlas
from clipatlas.settings import Settings
from tests.corpus import write_good_jpegs


def _state(atlas: Atlas) -> tuple[list[dict[str, object]], np.ndarray, np.ndarray]:
    rows = [
        {**asdict(it), "meta": dict(it.meta)}
        for page in atlas.store.iter_items(atlas.collection)
        for it in page
    ]
    ids, vectors = atlas.store.load_vectors(atlas.collection)
    return rows, ids, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--model", choices=("vit", "fake"), default="vit")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import ray

    from clipatlas.distributed import embed_with_ray

    with tempfile.TemporaryDirectory(prefix="clipatlas-ray-") as tmp:
        work = Path(tmp)
        if args.model == "vit":
            from tests.tiny_models import build_vit_b32_sized_hf_clip

            model = f"hf:{build_vit_b32_sized_hf_clip(work / 'vit-b32')}"
        else:
            model = "fake:64"
        write_good_jpegs(work / "jpegs", args.images, size=(512, 768))
        settings = Settings(
            home=work / "home", model=model, batch_size=args.batch_size, precision="fp32"
        )
        with Atlas.open("single", settings=settings) as atlas:
            atlas.embedder()
            start = time.perf_counter()
            single_report = atlas.ingest(work / "jpegs")
            single_s = time.perf_counter() - start
            single = _state(atlas)
        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        ray_start_s = time.perf_counter() - start
        with Atlas.open("ray", settings=settings) as atlas:
            atlas.embedder()
            start = time.perf_counter()
            ray_report = embed_with_ray(atlas, work / "jpegs")
            ray_s = time.perf_counter() - start
            distributed = _state(atlas)
        ray.shutdown()
    same_rows = single[0] == distributed[0]
    same_ids = np.array_equal(single[1], distributed[1])
    same_bits = single[2].tobytes() == distributed[2].tobytes()
    diff = (
        float(np.abs(single[2] - distributed[2]).max())
        if single[2].shape == distributed[2].shape
        else float("nan")
    )
    label = "ViT-B/32-sized random weights, fp32" if args.model == "vit" else "fake:64"
    load = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    lines = [
        f"### ray_embed ({time.strftime('%Y-%m-%d')})",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/ray_embed.py', *sys.argv[1:]])}`  ",
        f"{platform.machine()}, {os.cpu_count()} cores, ray {ray.__version__}, local mode, "
        f"{args.images} JPEGs 512x768, {label}, batch {args.batch_size}, load average {load}",
        "",
        "| run | stored | rejected | seconds | images/s |",
        "|---|---:|---:|---:|---:|",
        f"| single process (`Atlas.ingest`) | {single_report.stored} | {single_report.rejected} "
        f"| {single_s:.1f} | {single_report.stored / single_s:.1f} |",
        f"| Ray local mode (`embed_with_ray`) | {ray_report.stored} | {ray_report.rejected} "
        f"| {ray_s:.1f} | {ray_report.stored / ray_s:.1f} |",
        "",
        f"Ray start-up (not in the run time): {ray_start_s:.1f} s. Rows identical (ids, keys, "
        f"hashes, reasons, meta, thumbnails): {'yes' if same_rows else 'NO'}; vector ids "
        f"identical: {'yes' if same_ids else 'NO'}; stored vectors bit-identical: "
        f"{'yes' if same_bits else 'NO'} (max abs difference {diff:.3g}).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with args.out.open("a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
