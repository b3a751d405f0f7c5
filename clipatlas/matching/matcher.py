"""``RecordMatcher``: the record-matching API of one collection (``atlas.records()``).

with Atlas.open("lost-and-found") as atlas:
    atlas.import_records("posts.jsonl")
    for m in atlas.match("lost-17", against_kind="found"):
        print(m.key, m.score, m.explanation["components"])
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from clipatlas.embedders.base import Embedder
from clipatlas.errors import CalibrationError, MatchConfigError, RecordNotFoundError
from clipatlas.images import ImageLimits, decode_image
from clipatlas.matching.calibration import fit_calibration
from clipatlas.matching.importer import RecordImportReport, import_records
from clipatlas.matching.pairs import LabelledPair, read_pairs
from clipatlas.matching.records import Record, RecordSpec, parse_record, read_records
from clipatlas.matching.recordset import RecordSet
from clipatlas.matching.repository import RecordRepository
from clipatlas.matching.scoring import (
    Calibration,
    PairScores,
    default_calibration,
    explain,
    fuse,
    pair_scores,
)
from clipatlas.progress import ProgressCallback, ProgressEvent, emit

if TYPE_CHECKING:
    from clipatlas.engine import Engine

__all__ = ["RecordMatch", "RecordMatcher"]

PhotoInput = str | os.PathLike[str] | bytes | Image.Image


@dataclass(frozen=True)
class RecordMatch:
    key: str
    score: float
    kind: str | None
    category: str | None
    text: str
    photo_item_id: int | None
    explanation: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RecordMatcher:
    """Import, calibrate and match the records of one collection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._text_model: Embedder | None = None

    @property
    def repo(self) -> RecordRepository:
        return RecordRepository(
            self.engine.store.engine, self.engine.collection, self.engine.settings.vector_dtype
        )

    def text_model(self) -> Embedder:
        """The text-text model, loaded on first use: ``Settings.match_text_model`` when set
        explicitly (argument, environment), else the model of the stored record vectors,
        else the default."""
        if self._text_model is None:
            spec = self.engine.settings.match_text_model
            if "match_text_model" not in self.engine.settings.model_fields_set:
                spec = self.repo.field_models().get("text", spec)
            model = self.engine.registry.create_embedder(spec, self.engine.settings)
            if "text" not in model.modalities:
                raise MatchConfigError("match_text_model", f"{spec!r} does not embed text")
            self._text_model = model
        return self._text_model

    # -- import ------------------------------------------------------------------------------

    def import_records(
        self,
        path: str | os.PathLike[str],
        spec: RecordSpec | None = None,
        *,
        replace: bool = False,
        progress: ProgressCallback | None = None,
    ) -> RecordImportReport:
        """Import a ``.jsonl``/``.csv`` file; one typed error per bad record, the rest stored."""
        good, errors = read_records(Path(path), spec)
        return import_records(
            self.engine, good, errors, self.text_model(), replace=replace, progress=progress
        )

    # -- calibration -------------------------------------------------------------------------

    def calibration(self) -> Calibration:
        """The newest saved calibration, else the defaults from the settings."""
        saved = self.repo.latest_calibration()
        if saved is not None:
            cal_id, params, report, _ = saved
            return Calibration.from_params(params, report, id=cal_id)
        s = self.engine.settings
        return default_calibration(
            category_rule=s.match_category_rule,
            category_penalty=s.match_category_penalty,
            time_scale_days=s.match_time_scale_days,
            place_scale_km=s.match_place_scale_km,
        )

    def load(self) -> RecordSet:
        clip = self.engine.embedder()
        return self.repo.load(self.text_model().dim, clip.dim)

    def score_pairs(
        self,
        pairs: Sequence[LabelledPair],
        cal: Calibration | None = None,
        records: RecordSet | None = None,
    ) -> tuple[PairScores, np.ndarray, list[LabelledPair]]:
        """Raw component scores and labels of the pairs whose two records are stored; the
        pairs naming an unknown record are returned apart."""
        rs = records if records is not None else self.load()
        where = rs.index()
        usable = [p for p in pairs if p.left in where and p.right in where]
        unknown = [p for p in pairs if p.left not in where or p.right not in where]
        li = np.asarray([where[p.left] for p in usable], np.int64)
        ri = np.asarray([where[p.right] for p in usable], np.int64)
        scores = pair_scores(rs, li, rs, ri, cal or self.calibration())
        return scores, np.asarray([p.same for p in usable], np.int8), unknown

    def calibrate(
        self,
        pairs: str | os.PathLike[str] | Sequence[LabelledPair],
        *,
        target_precision: float | None = None,
        save: bool = True,
        **options: Any,
    ) -> Calibration:
        """Fit weights and threshold on labelled pairs and save them with the collection.

        ``options`` override matching options (``category_rule``, ``category_penalty``,
        ``category_synonyms``, ``time_scale_days``, ``place_scale_km``) before fitting.
        """
        source = str(pairs) if isinstance(pairs, (str, os.PathLike)) else "pairs"
        labelled = read_pairs(Path(pairs)) if isinstance(pairs, (str, os.PathLike)) else pairs
        if target_precision is not None and not 0 < target_precision <= 1:
            raise MatchConfigError("target_precision", f"{target_precision!r} not in (0, 1]")
        base = self.calibration().with_options(**options)
        if self.repo.count() == 0:
            raise CalibrationError(source, "the collection has no records (import them first)")
        scores, labels, unknown = self.score_pairs(labelled, base)
        skipped = set(unknown)
        # pairs of one query record (its left side) stay in one cross-validation fold
        groups = np.asarray([p.left for p in labelled if p not in skipped])
        cal = fit_calibration(
            scores, labels, base, target_precision=target_precision, source=source,
            groups=groups,
        )  # fmt: skip
        cal.report["unknown_pairs"] = len(unknown)
        cal.report["unknown_examples"] = [[p.left, p.right] for p in unknown[:5]]
        if save:
            cal_id = self.repo.save_calibration(cal.params(), cal.report)
            cal = cal.with_options(id=cal_id)
        return cal

    def configure(self, **options: Any) -> Calibration:
        """Change matching options without labels (``threshold``, ``category_rule``,
        ``category_penalty``, ``category_synonyms``, ``time_scale_days``, ``place_scale_km``):
        the current calibration with these changes is saved as the newest one."""
        allowed = {"threshold", "category_rule", "category_penalty", "category_synonyms",
                   "time_scale_days", "place_scale_km"}  # fmt: skip
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise MatchConfigError("options", f"unknown {unknown}; use {sorted(allowed)}")
        cal = self.calibration().with_options(**options)
        if "threshold" in options:  # one threshold for every modality pattern
            cal = dataclasses.replace(cal, thresholds={})
        return cal.with_options(id=self.repo.save_calibration(cal.params(), cal.report))

    # -- query -------------------------------------------------------------------------------

    def _query_set(self, record: Record, photo: PhotoInput | None) -> RecordSet:
        """A one-record set for a query that is not stored (vectors computed here)."""
        clip, text = self.engine.embedder(), self.text_model()
        picture = self._picture(photo if photo is not None else record.photo, record.key)

        def embed(model: Embedder, value: str | None) -> np.ndarray:
            return model.embed_texts([value]) if value else np.zeros((1, model.dim), np.float32)

        def number(value: float | None) -> np.ndarray:
            return np.asarray([np.nan if value is None else value], np.float64)

        photo_vector = (
            clip.embed_images([picture]) if picture is not None else np.zeros((1, clip.dim))
        )
        return RecordSet(
            keys=[record.key],
            kinds=[record.kind],
            categories=[record.category],
            texts=[record.text],
            photo_item_ids=[None],
            lat=number(record.lat),
            lon=number(record.lon),
            time=number(record.time),
            text=embed(text, record.text),
            has_text=np.asarray([bool(record.text)]),
            clip_text=embed(clip, record.text),
            photo=np.asarray(photo_vector, np.float32),
            has_photo=np.asarray([picture is not None]),
            place=embed(text, record.place),
            has_place=np.asarray([bool(record.place)]),
        )

    def _picture(self, photo: PhotoInput | None, key: str) -> Image.Image | None:
        if photo is None:
            return None
        if isinstance(photo, Image.Image):
            return photo.convert("RGB")
        s = self.engine.settings
        limits = ImageLimits(max_pixels=s.max_pixels, min_side=1, max_bytes=s.max_file_bytes)
        if isinstance(photo, bytes):
            data, name = photo, f"<photo of {key}>"
        elif str(photo).lower().startswith(("http://", "https://")):
            data, name = self.engine.fetcher().get(str(photo), expect="image").data, str(photo)
        else:
            data, name = Path(photo).expanduser().read_bytes(), str(photo)
        return decode_image(data, name, limits).image

    def match(
        self,
        record: str | Mapping[str, Any] | Record,
        *,
        k: int = 10,
        against_kind: str | None = None,
        photo: PhotoInput | None = None,
        threshold: float | None = None,
        spec: RecordSpec | None = None,
        records: RecordSet | None = None,
    ) -> list[RecordMatch]:
        """Top ``k`` stored records matching ``record`` (a stored id, a row or a
        :class:`Record`) at or above the threshold, best first, each with its explanation."""
        if k < 1:
            raise MatchConfigError("k", f"must be at least 1, got {k}")
        rs = records if records is not None else self.load()
        if isinstance(record, str):
            where = rs.index()
            if record not in where:
                raise RecordNotFoundError(self.engine.name, record)
            query, qi = rs, where[record]
        else:
            spec = spec or RecordSpec()
            parsed = (
                record
                if isinstance(record, Record)
                else parse_record({spec.id_field: "<query>", **record}, spec)
            )
            query, qi = self._query_set(parsed, photo), 0
        cands = np.asarray(
            [
                i
                for i in range(len(rs))
                if rs.keys[i] != query.keys[qi]
                and (against_kind is None or rs.kinds[i] == against_kind)
            ],
            np.int64,
        )
        return self._top(query, qi, rs, cands, k, threshold)

    def _top(
        self,
        query: RecordSet,
        qi: int,
        rs: RecordSet,
        cands: np.ndarray,
        k: int,
        threshold: float | None,
    ) -> list[RecordMatch]:
        cal = self.calibration()
        if not len(cands):
            return []
        scores = pair_scores(query, np.full(len(cands), qi), rs, cands, cal)
        prob = fuse(scores, cal)
        # each pair against the threshold of its modality pattern, unless one is given
        cut = cal.cuts(scores.photos) if threshold is None else np.full(len(prob), threshold)
        # a zero score is a closed gate or nothing comparable: never a match, whatever the cut
        ranked = [int(i) for i in np.argsort(-prob, kind="stable") if prob[i] > 0]
        order = [i for i in ranked[:k] if prob[i] >= cut[i]]
        return [
            RecordMatch(
                key=rs.keys[c],
                score=round(float(prob[i]), 4),
                kind=rs.kinds[c],
                category=rs.categories[c],
                text=rs.texts[c],
                photo_item_id=rs.photo_item_ids[c] if rs.has_photo[c] else None,
                explanation=explain(scores, i, cal),
            )
            for i in order
            for c in [int(cands[i])]
        ]

    def match_batch(
        self,
        *,
        import_id: int | None = None,
        keys: Sequence[str] | None = None,
        k: int = 5,
        against_kind: str | None = None,
        threshold: float | None = None,
        kind: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> dict[str, list[RecordMatch]]:
        """Match new records against every record outside that set (of ``against_kind``).

        The new records are ``keys``, else those of ``import_id``, else (with ``kind``) every
        record of that kind, else those of the latest import."""
        rs = self.load()
        if keys is not None:
            where = rs.index()
            missing = [key for key in keys if key not in where]
            if missing:
                raise RecordNotFoundError(self.engine.name, missing[0])
            new = [where[key] for key in keys]
        elif kind is not None and import_id is None:
            new = [i for i, record_kind in enumerate(rs.kinds) if record_kind == kind]
        else:
            wanted = import_id if import_id is not None else max(rs.import_ids, default=0)
            new = [i for i, imp in enumerate(rs.import_ids) if imp == wanted]
        fresh = set(new)
        old = np.asarray(
            [
                i
                for i in range(len(rs))
                if i not in fresh and (against_kind is None or rs.kinds[i] == against_kind)
            ],
            np.int64,
        )
        out: dict[str, list[RecordMatch]] = {}
        for done, i in enumerate(new, start=1):
            out[rs.keys[i]] = self._top(rs, i, rs, old, k, threshold)
            if done % 50 == 0 or done == len(new):
                emit(progress, ProgressEvent("match", done, len(new)))
        return out
