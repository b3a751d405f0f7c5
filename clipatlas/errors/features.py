"""Errors of the features: clustering (:mod:`clipatlas.analysis`), the dataset builder
(:mod:`clipatlas.dataset`), captions (:mod:`clipatlas.captions`) and record matching
(:mod:`clipatlas.matching`)::

    ClipatlasError
    ├── ClusteringError                 a collection cannot be clustered as asked
    │   ├── EmptyCollectionError        no searchable vectors to cluster
    │   ├── TooFewItemsError            fewer items than K or than the minimum cluster size
    │   └── TooManyItemsError           too many items for a method (DBSCAN: use HDBSCAN)
    ├── DatasetError                    a dataset build cannot go on (nothing half-written)
    │   ├── DatasetOutputError          the output folder cannot be written (path, detail)
    │   │   └── DatasetExistsError      the output folder exists and is not empty
    │   ├── NoCandidatesError           the source offered no candidates (query, source)
    │   ├── EmptyDatasetError           every candidate was dropped (reasons counted)
    │   ├── WeakClusterError            the query's cluster is too small a share to export
    │   └── BuildCancelledError         the build was stopped through its cancel hook
    ├── CaptionError                    captioning problems
    │   ├── CaptionImportError          a captions file/dataset is unusable (source, detail)
    │   └── CaptionBackendError         one item could not be captioned (item, reason, detail)
    ├── RecordError                     one record of an import could not be used (record, reason)
    │   ├── RecordFieldError            a required field is missing or a field does not parse
    │   ├── DuplicateRecordError        the id was already seen in this import or is stored
    │   └── RecordPhotoError            the record's photo failed (kept without a photo)
    ├── ConfigError
    │   ├── ClusterParameterError       bad clustering or evaluation argument (name, value)
    │   ├── GroundTruthError            a labels file or mapping for eval-clusters is unusable
    │   ├── MatchConfigError            a matching option is invalid, or vectors of another model
    │   └── CalibrationError            labelled pairs cannot calibrate the matcher
    └── StoreError
        └── RecordNotFoundError         no record by that id in the collection
"""

from __future__ import annotations

from clipatlas.errors.base import ClipatlasError, ConfigError
from clipatlas.errors.stages import StoreError

__all__ = [
    "BuildCancelledError",
    "CalibrationError",
    "CaptionBackendError",
    "CaptionError",
    "CaptionImportError",
    "ClusterParameterError",
    "ClusteringError",
    "DatasetError",
    "DatasetExistsError",
    "DatasetOutputError",
    "DuplicateRecordError",
    "EmptyCollectionError",
    "EmptyDatasetError",
    "GroundTruthError",
    "MatchConfigError",
    "NoCandidatesError",
    "RecordError",
    "RecordFieldError",
    "RecordNotFoundError",
    "RecordPhotoError",
    "TooFewItemsError",
    "TooManyItemsError",
    "WeakClusterError",
]


# -- clustering (clipatlas.analysis.clustering) -----------------------------------------------


class ClusteringError(ClipatlasError):
    """A collection cannot be clustered as asked."""


class EmptyCollectionError(ClusteringError):
    def __init__(self, collection: str) -> None:
        self.collection = collection
        super().__init__(f"collection {collection!r} has no items with vectors to cluster")


class TooFewItemsError(ClusteringError):
    """Fewer items than the method needs (``needed`` for ``what``, e.g. "k=20")."""

    def __init__(self, collection: str, items: int, needed: int, what: str) -> None:
        self.collection, self.items, self.needed, self.what = collection, items, needed, what
        super().__init__(
            f"collection {collection!r} has {items} item{'' if items == 1 else 's'} with vectors; "
            f"{what} needs at least {needed}"
        )


class TooManyItemsError(ClusteringError):
    def __init__(self, method: str, items: int, limit: int, hint: str) -> None:
        self.method, self.items, self.limit = method, items, limit
        super().__init__(f"{method} is limited to {limit} items, got {items}; {hint}")


class ClusterParameterError(ConfigError):
    """A clustering or evaluation argument is out of range (``name``, ``value``, why)."""

    def __init__(self, name: str, value: object, detail: str) -> None:
        self.name, self.value, self.detail = name, value, detail
        super().__init__(f"{name}={value!r}: {detail}")


class GroundTruthError(ConfigError):
    """Ground-truth labels for eval-clusters cannot be used (``source``, why)."""

    def __init__(self, source: str, detail: str) -> None:
        self.source, self.detail = source, detail
        super().__init__(f"ground-truth labels {source}: {detail}")


# -- dataset builder (clipatlas.dataset) ------------------------------------------------------


class DatasetError(ClipatlasError):
    """A dataset build cannot go on; its output folder is left as it was."""


class DatasetOutputError(DatasetError):
    def __init__(self, path: str, detail: str) -> None:
        self.path, self.detail = path, detail
        super().__init__(f"cannot write the dataset to {path}: {detail}")


class DatasetExistsError(DatasetOutputError):
    def __init__(self, path: str) -> None:
        super().__init__(path, "the folder exists and is not empty (use --overwrite to replace it)")


class NoCandidatesError(DatasetError):
    def __init__(self, query: str, source: str) -> None:
        self.query, self.source = query, source
        super().__init__(f"{source} offered no pictures for {query!r}; nothing was written")


class EmptyDatasetError(DatasetError):
    """Every candidate was dropped; ``reasons`` counts why (reason -> candidates)."""

    def __init__(self, query: str, reasons: dict[str, int]) -> None:
        self.query, self.reasons = query, dict(reasons)
        shown = ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())) or "no candidates"
        super().__init__(f"no picture for {query!r} passed the filters ({shown}); nothing written")


class WeakClusterError(DatasetError):
    """The cluster chosen as the query's is too small a share of the pictures to be trusted
    (``size`` of ``total`` < ``min_share``): nothing is exported."""

    def __init__(self, size: int, total: int, min_share: float, detail: str) -> None:
        self.size, self.total, self.min_share = size, total, min_share
        super().__init__(
            f"no dense cluster to export: {detail}; nothing written. Pass --min-share 0 (or "
            "--allow-small) to export it anyway, raise --eps, or describe the subject with "
            "--prompt/--positive-image"
        )


class BuildCancelledError(DatasetError):
    def __init__(self, build_id: int, stage: str) -> None:
        self.build_id, self.stage = build_id, stage
        super().__init__(
            f"dataset build {build_id} cancelled during {stage}; run it again to resume"
        )


# -- captions (retrieval-augmented captioning, clipatlas.captions) ----------------------------


class CaptionError(ClipatlasError):
    """Captioning could not be done as asked."""


class CaptionImportError(CaptionError):
    """A captions file or dataset cannot be read (missing columns, bad lines, no captions)."""

    def __init__(self, source: str, detail: str) -> None:
        self.source, self.detail = source, detail
        super().__init__(f"cannot import captions from {source}: {detail}")


class CaptionBackendError(CaptionError):
    """One item could not be captioned. ``reason`` is a stable code written to the database:
    ``unreachable``, ``timeout``, ``http_error``, ``bad_response``, ``empty_output``,
    ``non_text_output``, ``decode_error``, ``model_error``. ``detail`` never holds a secret."""

    def __init__(self, item: str, reason: str, detail: str = "") -> None:
        self.item, self.reason, self.detail = item, reason, detail
        super().__init__(f"{item}: {reason}" + (f" ({detail})" if detail else ""))


# -- record matching (clipatlas.matching) -----------------------------------------------------


class RecordError(ClipatlasError):
    """One record could not be imported as given (``record`` id, ``reason`` code, detail)."""

    def __init__(self, record: str, reason: str, detail: str = "", line: int | None = None) -> None:
        self.record, self.reason, self.detail, self.line = record, reason, detail, line
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"record {record!r}{where}: {reason}" + (f": {detail}" if detail else ""))

    def as_dict(self) -> dict[str, object]:
        return {"record": self.record, "reason": self.reason, "detail": self.detail,
                "line": self.line}  # fmt: skip


class RecordFieldError(RecordError):
    """A required field is missing (``missing_field``) or a value does not parse
    (``invalid_field``)."""


class DuplicateRecordError(RecordError):
    """The record id appears earlier in the same import or is stored already."""

    def __init__(self, record: str, detail: str, line: int | None = None) -> None:
        super().__init__(record, "duplicate_id", detail, line)


class RecordPhotoError(RecordError):
    """The photo of a record failed (``image_reason`` is the ingest :class:`Reason`); the record
    itself is imported without a photo."""

    def __init__(self, record: str, uri: str, image_reason: str, detail: str = "") -> None:
        self.uri, self.image_reason = uri, image_reason
        shown = f"{uri}: {image_reason}" + (f" ({detail})" if detail else "")
        super().__init__(record, "photo_failed", shown)


class RecordNotFoundError(StoreError):
    def __init__(self, collection: str, record: str) -> None:
        self.collection, self.record = collection, record
        super().__init__(f"no record {record!r} in collection {collection!r}")


class MatchConfigError(ConfigError):
    """A matching option is invalid (``name``, why), or stored vectors came from another model."""

    def __init__(self, name: str, detail: str) -> None:
        self.name, self.detail = name, detail
        super().__init__(f"matching {name}: {detail}")


class CalibrationError(ConfigError):
    """Labelled pairs cannot calibrate the matcher (``source``, why)."""

    def __init__(self, source: str, detail: str) -> None:
        self.source, self.detail = source, detail
        super().__init__(f"cannot calibrate from {source}: {detail}")
