"""Typed exceptions of clipatlas.

Every exception the library raises on purpose derives from :class:`ClipatlasError` and carries
the fields a caller needs to report it (the item, the reason) rather than only a message::

    ClipatlasError
    ├── ConfigError                     bad setting or argument
    │   ├── UnknownPluginError          no source/embedder/store registered under that name
    │   ├── ClusterParameterError       bad clustering or evaluation argument (name, value)
    │   └── GroundTruthError            a labels file or mapping for eval-clusters is unusable
    ├── ImageError                      one picture could not be used (path, reason, detail)
    │   └── ImageDecodeError            sniffing/decoding/validation rejected the bytes
    ├── EmbedderError                   model could not be loaded or used
    │   ├── ModelLoadError              weights/config missing or unreadable (model, detail)
    │   └── ModalityNotSupportedError   e.g. images given to a text-only model
    ├── StoreError                      database problems
    │   ├── CollectionNotFoundError     no collection by that name
    │   ├── EmbedderMismatchError       vectors of another embedder offered to a collection
    │   ├── SchemaVersionError          database written by a newer clipatlas
    │   ├── MediaWriteError             thumbnails/originals could not be written (disk full, ...)
    │   ├── EmbeddingImportError        bring-your-own vectors failed validation
    │   ├── MixedEmbeddersError         a collection holds vectors of several embedders
    │   └── RunNotFoundError            no clustering run by that id in the collection
    ├── SourceError                     a source could not list its items
    │   ├── PathOutsideRootError        a symlink or path escapes the ingest root
    │   ├── CivitaiError                CivitAI API refused or garbled a listing (detail, status)
    │   └── NaverError                  Naver Search API refused a request (code, status, detail)
    │       ├── NaverQuotaError         quota used up (scope: "daily" or "per_second")
    │       └── NaverAuthError          credentials missing, unknown or lacking the Search scope
    ├── FetchError                      one URL could not be fetched (url, reason, detail, status)
    └── ClusteringError                 a collection cannot be clustered as asked
        ├── EmptyCollectionError        no searchable vectors to cluster
        ├── TooFewItemsError            fewer items than K or than the minimum cluster size
        └── TooManyItemsError           too many items for a method (DBSCAN: use HDBSCAN)

Per-item problems during ingestion are not raised to the caller: they are recorded with a
:class:`Reason` and counted, so one bad file never stops a run.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "CivitaiError",
    "ClipatlasError",
    "ClusterParameterError",
    "ClusteringError",
    "CollectionNotFoundError",
    "ConfigError",
    "EmbedderError",
    "EmbedderMismatchError",
    "EmbeddingImportError",
    "EmptyCollectionError",
    "FetchError",
    "GroundTruthError",
    "ImageDecodeError",
    "ImageError",
    "MediaWriteError",
    "MixedEmbeddersError",
    "ModalityNotSupportedError",
    "ModelLoadError",
    "NaverAuthError",
    "NaverError",
    "NaverQuotaError",
    "PathOutsideRootError",
    "Reason",
    "RunNotFoundError",
    "SchemaVersionError",
    "SourceError",
    "StoreError",
    "TooFewItemsError",
    "TooManyItemsError",
    "UnknownPluginError",
]


class Reason(str, Enum):
    """Why an item was not stored. Values are stable: they are written to the database."""

    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TRUNCATED = "truncated"
    TOO_LARGE = "too_large"
    TOO_SMALL = "too_small"
    DECODE_ERROR = "decode_error"
    DUPLICATE = "duplicate"
    UNREADABLE = "unreadable"  # the file could not be read (permissions, vanished, I/O error)
    EMBED_ERROR = "embed_error"
    HTTP_ERROR = "http_error"  # an HTTP status or response we cannot use (see FetchError.status)
    TIMEOUT = "timeout"
    BLOCKED_ADDRESS = "blocked_address"  # the URL or an address it resolves to is not allowed
    NETWORK_ERROR = "network_error"  # connection refused/reset, TLS or protocol failure

    def __str__(self) -> str:
        return self.value


class ClipatlasError(Exception):
    """Base of every error clipatlas raises on purpose."""


class ConfigError(ClipatlasError):
    """A setting or argument is invalid."""


class UnknownPluginError(ConfigError):
    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        choices = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown {kind} {name!r} (registered: {choices})")


class ImageError(ClipatlasError):
    """One picture could not be used."""

    def __init__(self, path: str, reason: Reason, detail: str = "") -> None:
        self.path, self.reason, self.detail = path, Reason(reason), detail
        super().__init__(f"{path}: {self.reason.value}" + (f" ({detail})" if detail else ""))


class ImageDecodeError(ImageError):
    """Sniffing, decoding or validation rejected the bytes of a picture."""


class EmbedderError(ClipatlasError):
    """An embedder could not be loaded or used."""


class ModelLoadError(EmbedderError):
    def __init__(self, model: str, detail: str) -> None:
        self.model, self.detail = model, detail
        super().__init__(f"cannot load model {model!r}: {detail}")


class ModalityNotSupportedError(EmbedderError):
    def __init__(self, model: str, modality: str) -> None:
        self.model, self.modality = model, modality
        super().__init__(f"model {model!r} does not embed {modality}")


class StoreError(ClipatlasError):
    """The database refused or failed an operation."""


class CollectionNotFoundError(StoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no collection named {name!r}")


class EmbedderMismatchError(StoreError):
    def __init__(self, collection: str, expected: str, got: str) -> None:
        self.collection, self.expected, self.got = collection, expected, got
        super().__init__(
            f"collection {collection!r} holds vectors of {expected!r}; refusing vectors of {got!r}"
        )


class SchemaVersionError(StoreError):
    def __init__(self, found: int, supported: int) -> None:
        self.found, self.supported = found, supported
        super().__init__(
            f"database schema version {found} is newer than this clipatlas supports ({supported})"
        )


class MediaWriteError(StoreError):
    """The media folder could not be written; the run stops and can be resumed."""

    def __init__(self, root: str, detail: str) -> None:
        self.root, self.detail = root, detail
        super().__init__(f"cannot write media under {root}: {detail}")


class EmbeddingImportError(StoreError):
    """Imported vectors failed validation; ``problems`` lists every problem found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        shown = "; ".join(problems[:5]) + (
            f"; ... {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        super().__init__(f"cannot import embeddings from {source}: {shown}")


class SourceError(ClipatlasError):
    """A source could not list its items."""


class PathOutsideRootError(SourceError):
    def __init__(self, path: str, root: str) -> None:
        self.path, self.root = path, root
        super().__init__(f"{path} resolves outside the ingest root {root}")


class NaverError(SourceError):
    """The Naver Search API refused a request. ``code`` is its string ``errorCode`` (``SE02``,
    ``024``, ...) when the body was readable; ``status`` the HTTP status. Never holds a secret."""

    def __init__(self, code: str | None, status: int | None, detail: str = "") -> None:
        self.code, self.status, self.detail = code, status, detail
        shown = " ".join(str(p) for p in (code, status) if p is not None) or "error"
        super().__init__(f"naver {shown}" + (f": {detail}" if detail else ""))


class NaverQuotaError(NaverError):
    """Quota used up: ``scope`` is ``"daily"`` (``010``: stop until reset) or ``"per_second"``
    (``012``: a short backoff helps)."""

    def __init__(self, scope: str, code: str | None, status: int | None, detail: str = "") -> None:
        self.scope = scope
        super().__init__(
            code, status, f"{scope} quota exceeded" + (f"; {detail}" if detail else "")
        )


class NaverAuthError(NaverError):
    """Credentials missing, unknown or wrong, or the app lacks the Search API scope."""


class CivitaiError(SourceError):
    """The CivitAI API answered with something other than a usable listing: an HTML page
    (Cloudflare challenge, maintenance), 401/403/404, a JSON ``{"error": ...}`` body, or a
    failure the fetcher gave up on after its retries. ``detail`` never holds a secret."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        self.detail, self.status = detail, status
        shown = f"CivitAI API error {status}" if status is not None else "CivitAI API error"
        super().__init__(f"{shown}: {detail}")


class FetchError(ClipatlasError):
    """One URL could not be fetched. ``url`` is already redacted: it never holds a secret."""

    def __init__(
        self,
        url: str,
        reason: Reason,
        detail: str = "",
        status: int | None = None,
        body: str | None = None,
    ) -> None:
        self.url, self.reason, self.detail, self.status = url, Reason(reason), detail, status
        self.body = body  # the start of an error response's body (scrubbed), for API clients
        shown = f"{self.reason.value} {status}" if status is not None else self.reason.value
        super().__init__(f"{url}: {shown}" + (f" ({detail})" if detail else ""))


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


class MixedEmbeddersError(StoreError):
    """The collection's vectors come from more than one embedder; they cannot be compared."""

    def __init__(self, collection: str, embedder_ids: list[str]) -> None:
        self.collection, self.embedder_ids = collection, embedder_ids
        super().__init__(
            f"collection {collection!r} holds vectors of {len(embedder_ids)} embedders "
            f"({', '.join(embedder_ids)}); re-embed it with one model before clustering"
        )


class RunNotFoundError(StoreError):
    def __init__(self, collection: str, run_id: int | None, hint: str = "") -> None:
        self.collection, self.run_id = collection, run_id
        what = "no clustering run" if run_id is None else f"no clustering run {run_id}"
        super().__init__(f"{what} in collection {collection!r}" + (f": {hint}" if hint else ""))


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
            f"collection {collection!r} has {items} items with vectors; {what} needs at least "
            f"{needed}"
        )


class TooManyItemsError(ClusteringError):
    def __init__(self, method: str, items: int, limit: int, hint: str) -> None:
        self.method, self.items, self.limit = method, items, limit
        super().__init__(f"{method} is limited to {limit} items, got {items}; {hint}")


# -- dataset builder --------------------------------------------------------------------------
#   ClipatlasError
#   └── DatasetError                    a dataset build cannot go on (nothing half-written)
#       ├── DatasetOutputError          the output folder cannot be written (path, detail)
#       │   └── DatasetExistsError      the output folder exists and is not empty
#       ├── NoCandidatesError           the source offered no candidates (query, source)
#       ├── EmptyDatasetError           every candidate was dropped (reasons counted)
#       └── BuildCancelledError         the build was stopped through its cancel hook

__all__ += [
    "BuildCancelledError",
    "DatasetError",
    "DatasetExistsError",
    "DatasetOutputError",
    "EmptyDatasetError",
    "NoCandidatesError",
]


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


class BuildCancelledError(DatasetError):
    def __init__(self, build_id: int, stage: str) -> None:
        self.build_id, self.stage = build_id, stage
        super().__init__(
            f"dataset build {build_id} cancelled during {stage}; run it again to resume"
        )


# -- jobs and web --
# JobError (ClipatlasError)      a durable job cannot be found or moved as asked
#   JobNotFoundError             no job by that id (job_id)
#   JobStateError                the job's status forbids the action (job_id, status, action)
# OperationCancelled (ClipatlasError)  raised inside a long operation when its job is cancelled
# WebConfigError (ConfigError)   the web server refuses an unsafe configuration (e.g. no token)

__all__ += ["JobError", "JobNotFoundError", "JobStateError", "OperationCancelled", "WebConfigError"]


class JobError(ClipatlasError):
    """A durable job cannot be found or moved as asked."""


class JobNotFoundError(JobError):
    def __init__(self, job_id: int, where: str = "") -> None:
        self.job_id, self.where = job_id, where
        super().__init__(f"no job {job_id}" + (f" in {where}" if where else ""))


class JobStateError(JobError):
    def __init__(self, job_id: int, status: str, action: str) -> None:
        self.job_id, self.status, self.action = job_id, status, action
        super().__init__(f"cannot {action} job {job_id}: it is {status}")


class OperationCancelled(ClipatlasError):
    """The job running this operation was cancelled: committed work stays, resume does the rest."""

    def __init__(self, what: str = "operation") -> None:
        self.what = what
        super().__init__(f"{what} cancelled")


class WebConfigError(ConfigError):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


# -- captions (retrieval-augmented captioning, clipatlas.captions) ------------------------------
#
#   ClipatlasError
#   └── CaptionError                    captioning problems
#       ├── CaptionImportError          a captions file/dataset is unusable (source, detail)
#       └── CaptionBackendError         one item could not be captioned (item, reason, detail)

__all__ += ["CaptionBackendError", "CaptionError", "CaptionImportError"]


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


# -- record matching --------------------------------------------------------------------------
# RecordError (ClipatlasError): one record of an import could not be used (record, reason)
#   RecordFieldError     a required field is missing or a field does not parse
#   DuplicateRecordError the id was already seen in this import or is stored already
#   RecordPhotoError     the record's photo could not be read, fetched or decoded (kept
#                        without a photo)
# RecordNotFoundError (StoreError), MatchConfigError (ConfigError), CalibrationError (ConfigError)

__all__ += [
    "CalibrationError",
    "DuplicateRecordError",
    "MatchConfigError",
    "RecordError",
    "RecordFieldError",
    "RecordNotFoundError",
    "RecordPhotoError",
]


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


# -- distributed embedding (clipatlas.distributed, Ray) ---------------------------------------
#   DistributedError (ClipatlasError)   a Ray run failed on the cluster (address, why)
#   RayNotInstalledError (ConfigError)  the distributed extra is missing

__all__ += ["DistributedError", "RayNotInstalledError"]


class DistributedError(ClipatlasError):
    """A distributed embedding run failed on the cluster (``address``, why)."""

    def __init__(self, address: str, detail: str) -> None:
        self.address, self.detail = address, detail
        super().__init__(f"Ray run on {address}: {detail}")


class RayNotInstalledError(ConfigError):
    """``ray[data]`` is missing: install the ``distributed`` extra."""

    def __init__(self) -> None:
        super().__init__("Ray is not installed: pip install 'clipatlas[distributed]'")


# -- int8 precision (clipatlas.embedders.onnx_int8, ONNX Runtime) -----------------------------
#   OnnxExportError (EmbedderError)  the image tower could not be exported, quantised or loaded

__all__ += ["OnnxExportError"]


class OnnxExportError(EmbedderError):
    """The int8 ONNX image tower of a model could not be built or loaded (``model``, why)."""

    def __init__(self, model: str, detail: str) -> None:
        self.model, self.detail = model, detail
        super().__init__(f"int8 image tower of {model}: {detail}")


# -- automatic batch size (clipatlas.embedders.batching) --------------------------------------
#   EmbedderOutOfMemoryError (EmbedderError)  a batch ran out of device memory even at size 1

__all__ += ["EmbedderOutOfMemoryError"]


class EmbedderOutOfMemoryError(EmbedderError):
    """Item ``start`` (of ``stop - start``) of an embedding call did not fit on ``device``
    even alone; ``what`` is ``pictures`` or ``texts``."""

    def __init__(self, model: str, device: str, what: str, start: int, stop: int) -> None:
        self.model, self.device, self.what = model, device, what
        self.start, self.stop = start, stop
        items = f"{start}" if stop - start <= 1 else f"{start}-{stop - 1}"
        super().__init__(
            f"{model}: out of memory on {device} embedding {what} [{items}] of the batch even "
            "one at a time; free device memory, use a smaller model or another device"
        )
