"""Dataset builder quality defaults: sharpness of sharp vs. blurred pictures at several sizes.

Takes real photos (scikit-image samples) and generated textured pictures, renders each at
several resolutions (short side 240..2000 px), makes blurred copies (Gaussian blur whose radius
is a fixed fraction of the short side, i.e. the same defocus at every size, and an upscaled
small thumbnail, the usual "blurry" search result), saves everything as JPEG, and measures the
size-normalised Laplacian sharpness exactly as ingest does (``analyse_bytes`` with the same
JPEG draft decode). Prints, per resolution, the lowest sharp value and the highest blurred
value, then the threshold that separates them over all sizes.

    .venv/bin/python bench/quality_thresholds.py [--generated 12]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipatlas.images import analyse_bytes
from tests.corpus import textured_picture

SIDES = (240, 300, 480, 1000, 2000)
BLUR_FRACTION = 0.006  # Gaussian radius / short side: visibly out of focus at any size
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def bases(generated: int) -> list[tuple[str, Image.Image]]:
    found = [(name, Image.fromarray(getattr(skdata, name)()).convert("RGB")) for name in PHOTOS]
    found += [(f"textured-{i}", textured_picture((99, i), (1200, 900))) for i in range(generated)]
    return found


def at_side(image: Image.Image, side: int) -> Image.Image:
    w, h = image.size
    scale = side / min(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def sharpness_of(image: Image.Image) -> float:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return analyse_bytes(buf.getvalue(), "bench", draft=(256, 256)).quality.sharpness


def measure(generated: int) -> dict[str, dict[int, list[float]]]:
    out: dict[str, dict[int, list[float]]] = {"sharp": {}, "blurred": {}, "upscaled": {}}
    for _, base in bases(generated):
        for side in SIDES:
            sharp = at_side(base, side)
            blurred = sharp.filter(ImageFilter.GaussianBlur(radius=BLUR_FRACTION * side))
            thumb = at_side(base, 96).resize(sharp.size, Image.Resampling.BICUBIC)
            for kind, picture in (("sharp", sharp), ("blurred", blurred), ("upscaled", thumb)):
                out[kind].setdefault(side, []).append(sharpness_of(picture))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generated", type=int, default=12)
    args = parser.parse_args()
    values = measure(args.generated)
    print(f"{'short side':>10} | {'sharp min':>9} {'sharp med':>9} | "
          f"{'blur max':>8} {'blur med':>8} | {'upscaled max':>12}")  # fmt: skip
    for side in SIDES:
        s = np.asarray(values["sharp"][side])
        b = np.asarray(values["blurred"][side])
        u = np.asarray(values["upscaled"][side])
        print(f"{side:>10} | {s.min():9.1f} {np.median(s):9.1f} | {b.max():8.1f} "
              f"{np.median(b):8.1f} | {u.max():12.1f}")  # fmt: skip
    sharp_min = min(min(v) for v in values["sharp"].values())
    blur_max = max(max(v) for k in ("blurred", "upscaled") for v in values[k].values())
    print(f"\nall sizes: sharp >= {sharp_min:.1f}, blurred <= {blur_max:.1f}")
    if blur_max < sharp_min:
        print(f"separating threshold (geometric mean): {np.sqrt(sharp_min * blur_max):.1f}")
    else:
        print("the two overlap: no threshold separates every picture")


if __name__ == "__main__":
    main()
