"""Korean records through a CLIP loaded by the ``hf:`` loader, shaped like Korean CLIP.

``Bingsu/clip-vit-large-patch14-ko`` is a transformers ``CLIPModel`` with a ``CLIPTokenizer``
(Korean BPE vocabulary): the architecture of :func:`tests.tiny_models.build_tiny_hf_clip`, whose
byte-level tokenizer takes Hangul as bytes. Random weights say nothing about quality; this
checks that Korean text and photos go through the real loader, the import, the cross-modal
scores and the match explanation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipatlas import Atlas
from clipatlas.settings import Settings
from tests.corpus import coloured_picture
from tests.tiny_models import build_tiny_hf_clip

ROWS = [
    {
        "id": "분실-1",
        "kind": "lost",
        "description": "검은색 가죽 지갑을 강남역에서 잃어버렸어요",
        "category": "지갑",
        "photo": "wallet.png",
    },
    {
        "id": "습득-1",
        "kind": "found",
        "description": "검은색 가죽 지갑을 강남역에서 잃어버렸어요",
        "category": "wallet",
    },
    {
        "id": "습득-2",
        "kind": "found",
        "description": "빨간 우산을 홍대입구역에서 주웠습니다",
        "category": "우산",
    },
    {
        "id": "found-3",
        "kind": "found",
        "description": "Found a black leather wallet at Gangnam",
        "category": "wallet",
        "photo": "wallet2.png",
    },
]


def test_korean_records_import_and_match_through_a_korean_clip_shaped_model(
    tmp_path: Path,
) -> None:
    pytest.importorskip("transformers")
    model_dir = build_tiny_hf_clip(tmp_path / "tiny-ko-clip")
    coloured_picture((20, 20, 20)).save(tmp_path / "wallet.png")
    coloured_picture((30, 25, 20)).save(tmp_path / "wallet2.png")
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS), encoding="utf-8")
    settings = Settings(
        home=tmp_path / "home", model=f"hf:{model_dir}", match_text_model="fake:32", workers=-1
    )
    with Atlas.open("ko", settings=settings) as atlas:
        report = atlas.import_records(path)
        rs = atlas.records().load()
        syn = {"지갑": "wallet", "우산": "umbrella"}
        matcher = atlas.records()
        cal = matcher.calibration().with_options(category_synonyms=syn, category_rule="gate")
        matcher.repo.save_calibration(cal.params(), {})
        matches = atlas.match("분실-1", against_kind="found", threshold=0.0, k=3)
    assert report.imported == 4 and report.with_photo == 2 and not report.errors
    assert atlas.collection.embedder_id == f"hf:{model_dir}"
    where = rs.index()
    clip_ko = rs.clip_text[where["습득-1"]]
    assert np.isfinite(clip_ko).all() and np.linalg.norm(clip_ko) == pytest.approx(1, abs=1e-2)
    assert not np.allclose(rs.clip_text[where["습득-1"]], rs.clip_text[where["습득-2"]])
    keys = [m.key for m in matches]
    assert "습득-2" not in keys  # an umbrella (우산) is gated away from a wallet (지갑)
    assert keys[0] == "습득-1"  # the same Korean description
    first = {c["component"]: c for c in matches[0].explanation["components"]}
    assert first["text"]["raw"] == pytest.approx(1.0, abs=1e-3) and "cross" in first
    photo_pair = {c["component"] for c in matches[1].explanation["components"]}
    assert "image" in photo_pair and matches[1].explanation["category"]["same"] is True
