"""The dataset builder's cluster choice under many query words (docs/dataset-builder.md,
"Choosing the cluster").

Serves the planted mixture of issue 21 (60 on-topic pictures, 15 look-alikes, 10 screenshots,
10 junk) from the fake Naver server under each word, builds each word's dataset with the
``planted:64`` test embedder and prints precision, recall, the chosen cluster, how it was
chosen, the strongest text evidence for a cluster that lost, the warnings, and the cluster
the old score (0.35 x size share + 0.65 x softmax(100 x cosine)) would have chosen. With
``--minilm`` it runs the real-text-model case instead (30 cats, 26 dogs, 8 screenshots,
10 junk; all-MiniLM-L6-v2 text tower).

    .venv/bin/python bench/dataset_evidence.py [--minilm]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dataset_evidence import WORDS, build_under
from tests.dataset_planted import PlantedNaver, mixture

_MINILM_WORDS = {"kitten": "subject", "tabby cat": "subject", "puppy": "lookalike",
                 "a cute dog": "lookalike", "golden retriever": "lookalike",
                 "강아지": "lookalike"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm", action="store_true", help="the real text model case")
    args = parser.parse_args()
    if args.minilm:
        catalogue, model = mixture(30, 26, 8, 10), "minilm-planted:"
        words = _MINILM_WORDS
    else:
        catalogue, model = mixture(60, 15, 10, 10), "planted:64"
        words = {w: "subject" for w in (*WORDS, "호랑이")}
    names = list(words)
    print(f"{'word':18} {'prec':>5} {'rec':>5} {'chosen':>6} {'decided by':16} "
          f"{'rival z':>7}  {'old rule':>8}  warnings")  # fmt: skip
    with (
        PlantedNaver(catalogue, names[0], also=names[1:]) as naver,
        tempfile.TemporaryDirectory() as home,
    ):
        for word, truth in words.items():
            o = build_under(Path(home), naver, catalogue, word, model=model, truth=truth)
            print(f"{word:18} {o.precision:5.2f} {o.recall:5.2f} {o.chosen_size:6d} "
                  f"{o.decided_by:16} {o.max_rival_z:7.2f}  {o.old_rule_size:8d}  "
                  f"{','.join(o.warnings) or '-'}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
