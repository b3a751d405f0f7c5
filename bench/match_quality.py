"""Record matching quality (issue 8, "Done means"): calibrated fusion vs naive vector fusion.

The labelled lost-and-found set of :mod:`tests.match_dataset` (lost and found posts per object,
photos on both, one or neither side, a near-miss distractor of another category per object) is
imported into a fresh collection; the matcher is calibrated on one half of the objects and
scored on the other. Compared on the test half, all at one threshold each:

* calibrated: per-component log-odds, weights renormalised over the modalities present,
  category penalty, weights and threshold fitted on the calibration half;
* default: the same scoring with the documented default parameters (no labels);
* naive clip: one vector 0.3 x CLIP text + 0.7 x CLIP image (text alone without a photo);
* naive concat: [0.3 x text-model vector, 0.7 x CLIP image] (zero image part without a photo).

F1 is reported overall and per pair group (no photo / one photo / both photos), plus the share
of lost posts whose near-miss distractor scores at least as high as the true found post, and
top-1 accuracy of batch matching. Defaults: real all-MiniLM-L6-v2 text, the colour-aware
``fake:64`` embedder standing in for CLIP. With real weights (docs/matching.md):

    .venv/bin/python bench/match_quality.py [--objects 192] [--seeds 3]
    .venv/bin/python bench/match_quality.py --model hf:Bingsu/clip-vit-large-patch14-ko \\
        --text-model \\
        sentence-transformers:sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2 \\
        --language ko
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.match_benchmark import MINILM, run_comparison

METHODS = ("calibrated", "default", "naive_clip", "naive_concat")
GROUPS = ("overall", "no_photo", "one_photo", "both_photos")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=192)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--model", default="fake:64", help="image/text (CLIP) embedder")
    parser.add_argument("--text-model", default=MINILM, help="text-text embedder")
    parser.add_argument("--target-precision", type=float, default=None)
    parser.add_argument("--language", choices=("en", "ko"), default="en", help="post language")
    parser.add_argument("--json", action="store_true", help="print every run as JSON")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="match-bench-") as tmp:
            runs.append(
                run_comparison(
                    Path(tmp),
                    n_objects=args.objects,
                    seed=seed,
                    model=args.model,
                    text_model=args.text_model,
                    target_precision=args.target_precision,
                    language=args.language,
                )
            )
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "rows"} for r in runs], indent=2))
        return
    first = runs[0]
    print(
        f"### Record matching quality ({args.objects} objects, {first['records']} records, "
        f"{args.seeds} seeds; test half: {first['calibrated']['overall']['pairs']} pairs, "
        f"{first['calibrated']['overall']['positives']} matching)\n"
    )
    print(f"image/CLIP model `{args.model}`, text `{args.text_model}`, posts in {args.language}\n")
    print(
        "| method | F1 overall | P | R | F1 no photo | F1 one photo | F1 both photos "
        "| near miss wins |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for method in METHODS:
        cells = [
            _mean([r[method]["overall"]["f1"] for r in runs]),
            _mean([r[method]["overall"]["precision"] for r in runs]),
            _mean([r[method]["overall"]["recall"] for r in runs]),
        ]
        cells += [_mean([r[method][g]["f1"] for r in runs]) for g in GROUPS[1:]]
        near = [r[method].get("near_miss_wins") for r in runs]
        shown = "-" if None in near else f"{_mean([float(x) for x in near if x is not None]):.3f}"
        print(f"| {method} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {shown} |")
    print("\nTop-1 among the test half's found posts, by photos of the true pair:\n")
    print("| method | no photo | one photo | both photos |")
    print("|---|---|---|---|")
    for method in ("calibrated", "naive_clip", "naive_concat"):
        cells = [_mean([r[method]["top1"].get(g, 0.0) for r in runs]) for g in GROUPS[1:]]
        print(f"| {method} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    print(
        f"\nbatch top-1 accuracy (calibrated): {_mean([r['top1_accuracy'] for r in runs]):.3f}; "
        f"per run seconds: {', '.join(str(r['seconds']) for r in runs)}"
    )
    print(
        f"fitted weights (seed 0): {first['weights']}, threshold {first['threshold']}, "
        f"per pattern {first['thresholds']}, category penalty {first['category_penalty']}"
    )
    for r in runs:
        v = r["validation"]
        print(
            f"held out on the calibration half (5-fold), seed run: components F1 "
            f"{v['components']['f1']} {v['components']['ci95']}, fixed F1 {v['fixed']['f1']} "
            f"{v['fixed']['ci95']} -> used {r['method']}; one-photo true pairs passing: "
            f"{r['one_photo_true_pass']}"
        )


if __name__ == "__main__":
    main()
