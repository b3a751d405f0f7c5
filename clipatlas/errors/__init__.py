"""Typed exceptions of clipatlas.

Every exception the library raises on purpose derives from :class:`ClipatlasError` and carries
the fields a caller needs to report it (the item, the reason) rather than only a message. Import
them from here (``from clipatlas.errors import FetchError``); each lives in the module of the
layer that raises it (right column), all built on :mod:`clipatlas.errors.base`::

    ClipatlasError                                                          base
    ├── ConfigError                     bad setting or argument             base
    │   ├── UnknownPluginError          no source/embedder/store registered base
    │   ├── ClusterParameterError       bad clustering or evaluation arg    features
    │   ├── GroundTruthError            unusable labels for eval-clusters   features
    │   ├── MatchConfigError            bad matching option                 features
    │   ├── CalibrationError            labelled pairs cannot calibrate     features
    │   ├── RayNotInstalledError        the distributed extra is missing    stages
    │   └── WebConfigError              unsafe web configuration (no token) jobs
    ├── ImageError                      one picture could not be used       stages
    │   └── ImageDecodeError            sniffing/decoding rejected the bytes stages
    ├── EmbedderError                   model could not be loaded or used   stages
    │   ├── ModelLoadError              weights/config missing, unreadable  stages
    │   ├── ModalityNotSupportedError   e.g. images to a text-only model    stages
    │   ├── OnnxExportError             int8 image tower not built/loaded   stages
    │   └── EmbedderOutOfMemoryError    a batch did not fit even at size 1  stages
    ├── DistributedError                a Ray run failed on the cluster     stages
    ├── StoreError                      database problems                   stages
    │   ├── CollectionNotFoundError     no collection by that name          stages
    │   ├── EmbedderMismatchError       vectors of another embedder offered stages
    │   ├── SchemaVersionError          database written by a newer version stages
    │   ├── MediaWriteError             media could not be written          stages
    │   ├── EmbeddingImportError        imported vectors failed validation  stages
    │   │   └── EmbeddingDimensionError vectors of another dimension        stages
    │   ├── MixedEmbeddersError         vectors of several embedders        stages
    │   ├── RunNotFoundError            no clustering run by that id        stages
    │   └── RecordNotFoundError         no record by that id                features
    ├── SourceError                     a source could not list its items   stages
    │   ├── PathOutsideRootError        a path escapes the ingest root      stages
    │   ├── CivitaiError                CivitAI refused/garbled a listing   stages
    │   └── NaverError                  Naver Search API refused a request  stages
    │       ├── NaverQuotaError         quota used up (daily, per_second)   stages
    │       └── NaverAuthError          credentials missing or wrong        stages
    ├── FetchError                      one URL could not be fetched        stages
    ├── ClusteringError                 cannot be clustered as asked        features
    │   ├── EmptyCollectionError        no searchable vectors to cluster    features
    │   ├── TooFewItemsError            fewer items than K or min size      features
    │   └── TooManyItemsError           too many items for a method         features
    ├── DatasetError                    a dataset build cannot go on        features
    │   ├── DatasetOutputError          the output folder cannot be written features
    │   │   └── DatasetExistsError      it exists and is not empty          features
    │   ├── NoCandidatesError           the source offered no candidates    features
    │   ├── EmptyDatasetError           every candidate was dropped         features
    │   ├── WeakClusterError            the query's cluster is too small    features
    │   └── BuildCancelledError         stopped through its cancel hook     features
    ├── CaptionError                    captioning problems                 features
    │   ├── CaptionImportError          a captions file is unusable         features
    │   └── CaptionBackendError         one item could not be captioned     features
    ├── RecordError                     one imported record is unusable     features
    │   ├── RecordFieldError            a field is missing or does not parse features
    │   ├── DuplicateRecordError        the id was seen or is stored        features
    │   └── RecordPhotoError            the record's photo failed           features
    ├── JobError                        a job cannot be found or moved      jobs
    │   ├── JobNotFoundError            no job by that id                   jobs
    │   └── JobStateError               the job's status forbids the action jobs
    └── OperationCancelled              the running job was cancelled       jobs

The modules' own docstrings say more about each error's fields. Per-item problems during
ingestion are not raised to the caller: they are recorded with a :class:`Reason` and counted, so
one bad file never stops a run.
"""

from __future__ import annotations

# Every name of every module (each module's ``__all__`` is the one list of its names).
from clipatlas.errors import base, features, jobs, stages
from clipatlas.errors.base import *  # noqa: F403
from clipatlas.errors.features import *  # noqa: F403
from clipatlas.errors.jobs import *  # noqa: F403
from clipatlas.errors.stages import *  # noqa: F403

__all__: list[str] = []
__all__ += base.__all__
__all__ += features.__all__
__all__ += jobs.__all__
__all__ += stages.__all__
