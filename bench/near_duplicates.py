"""Near-duplicate thresholds: pHash distance and embedding cosine, duplicates vs. different.

Builds base pictures (the 20 scikit-image sample photos bundled with the package, plus generated
textured pictures), makes edited copies of each (half size, JPEG quality 35, 5% crop on every
side, +15% brightness, and all of those at once), passes everything through a JPEG/PNG
round trip, and measures

* the pHash Hamming distance and the cosine (``fake:64`` embedder, or ``--model``) between each
  base and its own copies (true duplicates), and
* the same between every pair of different bases (different pictures),

then prints the distributions and the thresholds that separate them. Also times the vectorised
pair search on random hashes/vectors of ``--scale`` items.

    .venv/bin/python bench/near_duplicates.py [--generated 60] [--model fake:64] [--scale 50000]
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipatlas.analysis.duplicates import cosine_pairs, phash_pairs, phash_to_uint64
from clipatlas.images.hashing import hamming_distance, perceptual_hash
from clipatlas.registry import default_registry
from clipatlas.settings import Settings
from tests.corpus import textured_picture

PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel",
    "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo",
    "moon", "page", "retina", "rocket", "text",
)  # fmt: skip


def _roundtrip(image: Image.Image, quality: int = 90) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _variants(image: Image.Image) -> dict[str, Image.Image]:
    w, h = image.size
    dx, dy = w // 20, h // 20
    small = image.resize((max(w // 2, 1), max(h // 2, 1)), Image.Resampling.LANCZOS)
    crop = image.crop((dx, dy, w - dx, h - dy))
    bright = ImageEnhance.Brightness(image).enhance(1.15)
    combo = ImageEnhance.Brightness(crop.resize((w // 2, h // 2))).enhance(1.15)
    return {
        "half size": _roundtrip(small),
        "jpeg q35": _roundtrip(image, 35),
        "crop 5%": _roundtrip(crop),
        "brightness +15%": _roundtrip(bright),
        "all at once": _roundtrip(combo, 50),
    }


def _bases(generated: int) -> list[tuple[str, Image.Image]]:
    from skimage import data

    bases = []
    for name in PHOTOS:
        pixels = getattr(data, name)()
        if pixels.ndim == 3 and pixels.shape[2] == 4:
            pixels = pixels[..., :3]
        bases.append((name, _roundtrip(Image.fromarray(pixels).convert("RGB"))))
    for seed in range(generated):
        bases.append((f"textured-{seed}", _roundtrip(textured_picture(1000 + seed, (384, 256)))))
    return bases


def _stats(values: list[float]) -> str:
    a = np.asarray(values)
    q = np.percentile(a, [1, 5, 50, 95, 99])
    return (
        f"{len(a)} | {a.min():.3f} | {q[0]:.3f} | {q[1]:.3f} | {q[2]:.3f} | {q[3]:.3f} | "
        f"{q[4]:.3f} | {a.max():.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generated", type=int, default=60)
    parser.add_argument("--model", default="fake:64")
    parser.add_argument("--scale", type=int, default=50_000)
    args = parser.parse_args()
    embedder = default_registry().create_embedder(args.model, Settings(model=args.model))
    bases = _bases(args.generated)
    copies = {name: _variants(image) for name, image in bases}
    base_vecs = embedder.embed_images([im for _, im in bases])
    base_hash = [perceptual_hash(im) for _, im in bases]

    dup_dist: dict[str, list[float]] = {}
    dup_cos: dict[str, list[float]] = {}
    for b, (name, _) in enumerate(bases):
        kinds = list(copies[name])
        vecs = embedder.embed_images([copies[name][k] for k in kinds])
        for kind, vec in zip(kinds, vecs, strict=True):
            d = hamming_distance(base_hash[b], perceptual_hash(copies[name][kind]))
            dup_dist.setdefault(kind, []).append(d)
            dup_cos.setdefault(kind, []).append(float(vec @ base_vecs[b]))
    diff_dist, diff_cos = [], []
    for a, b in itertools.combinations(range(len(bases)), 2):
        diff_dist.append(hamming_distance(base_hash[a], base_hash[b]))
        diff_cos.append(float(base_vecs[a] @ base_vecs[b]))

    all_dist = [d for v in dup_dist.values() for d in v]
    all_cos = [c for v in dup_cos.values() for c in v]
    print(
        f"{len(bases)} base pictures ({len(PHOTOS)} photos, {args.generated} generated), "
        f"5 edited copies each, embedder {embedder.id}\n"
    )
    print("| measure | pairs | n | min | p1 | p5 | median | p95 | p99 | max |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, values in dup_dist.items():
        print(f"| pHash distance | duplicate: {kind} | {_stats(values)} |")
    uncropped = [d for kind in ("half size", "jpeg q35", "brightness +15%") for d in dup_dist[kind]]
    print(f"| pHash distance | duplicate: edits without a crop | {_stats(uncropped)} |")
    print(f"| pHash distance | duplicate: all edits | {_stats(all_dist)} |")
    print(f"| pHash distance | different pictures | {_stats(diff_dist)} |")
    for kind, values in dup_cos.items():
        print(f"| cosine | duplicate: {kind} | {_stats(values)} |")
    print(f"| cosine | duplicate: all edits | {_stats(all_cos)} |")
    print(f"| cosine | different pictures | {_stats(diff_cos)} |")
    print(
        f"\nclosest different pairs: pHash {sorted(diff_dist)[:5]}, "
        f"cosine {[round(c, 3) for c in sorted(diff_cos)[-5:]]}\n"
    )
    for t in (4, 6, 8, 10, 12, 14, 16, 18):
        recall = np.mean(np.asarray(all_dist) <= t)
        false = int(np.sum(np.asarray(diff_dist) <= t))
        print(f"pHash <= {t:2d}: duplicates found {recall:.3f}, different pairs matched {false}")
    for t in (0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995):
        recall = np.mean(np.asarray(all_cos) >= t)
        false = int(np.sum(np.asarray(diff_cos) >= t))
        print(f"cosine >= {t:.3f}: duplicates found {recall:.3f}, different pairs matched {false}")

    rng = np.random.default_rng(0)
    hashes, _ = phash_to_uint64(f"{int(x):016x}" for x in rng.integers(0, 2**63, args.scale))
    start = time.perf_counter()
    phash_pairs(hashes, 10)
    t_hash = time.perf_counter() - start
    vectors = rng.standard_normal((args.scale, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    start = time.perf_counter()
    cosine_pairs(vectors, 0.99)
    t_cos = time.perf_counter() - start
    print(
        f"\npair search over {args.scale} random items: pHash {t_hash:.2f}s, "
        f"cosine (512-d) {t_cos:.2f}s"
    )


if __name__ == "__main__":
    main()
