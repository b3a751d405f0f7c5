"""Errors of the stages a picture passes: the ``stages`` layer of ARCHITECTURE.md, below the
engine and the features. One section per part, each with its own tree.

Of one picture (:mod:`clipatlas.images`)::

    ClipatlasError
    └── ImageError                      one picture could not be used (path, reason, detail)
        └── ImageDecodeError            sniffing/decoding/validation rejected the bytes

Of the models (:mod:`clipatlas.embedders`) and of Ray runs (:mod:`clipatlas.distributed`)::

    ClipatlasError
    ├── EmbedderError                   model could not be loaded or used
    │   ├── ModelLoadError              weights/config missing or unreadable (model, detail)
    │   ├── ModalityNotSupportedError   e.g. images given to a text-only model
    │   ├── OnnxExportError             the int8 image tower could not be built or loaded
    │   └── EmbedderOutOfMemoryError    a batch ran out of device memory even at size 1
    ├── DistributedError                a Ray run failed on the cluster (address, why)
    └── ConfigError
        └── RayNotInstalledError        the distributed extra is missing

Of the database and the media folder (:mod:`clipatlas.store` and its callers)::

    ClipatlasError
    └── StoreError                      database problems
        ├── CollectionNotFoundError     no collection by that name
        ├── EmbedderMismatchError       vectors of another embedder offered to a collection
        ├── SchemaVersionError          database written by a newer clipatlas
        ├── MediaWriteError             thumbnails/originals could not be written (disk full, ...)
        ├── EmbeddingImportError        bring-your-own vectors failed validation
        │   └── EmbeddingDimensionError vectors of another dimension than the embedder's
        ├── MixedEmbeddersError         a collection holds vectors of several embedders
        └── RunNotFoundError            no clustering run by that id in the collection

Of listing and fetching (:mod:`clipatlas.sources`, :mod:`clipatlas.fetch`)::

    ClipatlasError
    ├── SourceError                     a source could not list its items
    │   ├── PathOutsideRootError        a symlink or path escapes the ingest root
    │   ├── CivitaiError                CivitAI API refused or garbled a listing (detail, status)
    │   └── NaverError                  Naver Search API refused a request (code, status, detail)
    │       ├── NaverQuotaError         quota used up (scope: "daily" or "per_second")
    │       └── NaverAuthError          credentials missing, unknown or lacking the Search scope
    └── FetchError                      one URL could not be fetched (url, reason, detail, status)
"""

from __future__ import annotations

from clipatlas.errors.base import ClipatlasError, ConfigError, Reason

__all__ = [
    "CivitaiError",
    "CollectionNotFoundError",
    "DistributedError",
    "EmbedderError",
    "EmbedderMismatchError",
    "EmbedderOutOfMemoryError",
    "EmbeddingDimensionError",
    "EmbeddingImportError",
    "FetchError",
    "ImageDecodeError",
    "ImageError",
    "MediaWriteError",
    "MixedEmbeddersError",
    "ModalityNotSupportedError",
    "ModelLoadError",
    "NaverAuthError",
    "NaverError",
    "NaverQuotaError",
    "OnnxExportError",
    "PathOutsideRootError",
    "RayNotInstalledError",
    "RunNotFoundError",
    "SchemaVersionError",
    "SourceError",
    "StoreError",
]


# == one picture (clipatlas.images) ============================================================


class ImageError(ClipatlasError):
    """One picture could not be used."""

    def __init__(self, path: str, reason: Reason, detail: str = "") -> None:
        self.path, self.reason, self.detail = path, Reason(reason), detail
        super().__init__(f"{path}: {self.reason.value}" + (f" ({detail})" if detail else ""))


class ImageDecodeError(ImageError):
    """Sniffing, decoding or validation rejected the bytes of a picture."""


# == the models (clipatlas.embedders, clipatlas.distributed) ===================================


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


# -- int8 precision (clipatlas.embedders.onnx_int8, ONNX Runtime) -----------------------------


class OnnxExportError(EmbedderError):
    """The int8 ONNX image tower of a model could not be built or loaded (``model``, why)."""

    def __init__(self, model: str, detail: str) -> None:
        self.model, self.detail = model, detail
        super().__init__(f"int8 image tower of {model}: {detail}")


# -- automatic batch size (clipatlas.embedders.batching) --------------------------------------


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


# -- distributed embedding (clipatlas.distributed, Ray) ---------------------------------------


class DistributedError(ClipatlasError):
    """A distributed embedding run failed on the cluster (``address``, why)."""

    def __init__(self, address: str, detail: str) -> None:
        self.address, self.detail = address, detail
        super().__init__(f"Ray run on {address}: {detail}")


class RayNotInstalledError(ConfigError):
    """``ray[data]`` is missing: install the ``distributed`` extra."""

    def __init__(self) -> None:
        super().__init__("Ray is not installed: pip install 'clipatlas[distributed]'")


# == the database and the media folder (clipatlas.store) =======================================


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


class EmbeddingDimensionError(EmbeddingImportError):
    """Imported vectors are ``got``-d but the collection's embedder (``embedder``) makes
    ``expected``-d ones: search and cluster naming would compare vectors of different models."""

    def __init__(self, source: str, got: int, expected: int, embedder: str, bound: bool) -> None:
        self.got, self.expected, self.embedder, self.bound = got, expected, embedder, bound
        whose = (
            f"the collection holds {expected}-d vectors of {embedder!r}"
            if bound
            else f"embedder {embedder!r} makes {expected}-d vectors (text tower)"
        )
        super().__init__(
            source,
            [
                f"vectors are {got}-d but {whose}; nothing imported (name the model that made "
                "them with --model / embedder_id)"
            ],
        )


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


# == listing and fetching (clipatlas.sources, clipatlas.fetch) =================================


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
        what = f"{scope} quota exceeded" + (f"; {detail}" if detail else "")
        if scope == "daily":
            what += " (not retried: the quota resets at midnight KST; run again after it)"
        super().__init__(code, status, what)


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
