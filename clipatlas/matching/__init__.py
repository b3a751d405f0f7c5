"""Multimodal record matching: records with text and an optional photo (lost-and-found posts).

* :mod:`~clipatlas.matching.records`: read and validate records (JSONL/CSV);
* :mod:`~clipatlas.matching.importer`: store them, photos through the ingest pipeline;
* :mod:`~clipatlas.matching.scoring`: per-modality scores fused with renormalised weights;
* :mod:`~clipatlas.matching.calibration`: fit weights and threshold on labelled pairs;
* :mod:`~clipatlas.matching.matcher`: :class:`RecordMatcher`, the API (query, batch);
* :mod:`~clipatlas.matching.evaluate`: metrics per photo group and the naive baselines.
"""

from clipatlas.matching.importer import RecordImportReport
from clipatlas.matching.matcher import RecordMatch, RecordMatcher
from clipatlas.matching.pairs import LabelledPair, read_pairs
from clipatlas.matching.records import Record, RecordSpec, read_records
from clipatlas.matching.scoring import COMPONENTS, Calibration, default_calibration

__all__ = [
    "COMPONENTS",
    "Calibration",
    "LabelledPair",
    "Record",
    "RecordImportReport",
    "RecordMatch",
    "RecordMatcher",
    "RecordSpec",
    "default_calibration",
    "read_pairs",
    "read_records",
]
