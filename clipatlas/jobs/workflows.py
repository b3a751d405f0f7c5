"""Job kinds of the later workflows: ``build-dataset`` (the dataset builder) and ``caption``
(batch retrieval-augmented captioning).

Both are resumable because their operations are: a build finds its row by output folder and
replays its stored listing (nothing fetched or embedded twice); captioning skips items that
already have a caption of the same model and prompt version.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clipatlas.errors import BuildCancelledError, ConfigError, OperationCancelled
from clipatlas.jobs.builtin import _typed
from clipatlas.jobs.kinds import JobContext, JobKind, JobKinds
from clipatlas.progress import ProgressEvent
from clipatlas.settings import Settings

__all__ = ["BUILD_SOURCES", "dataset_folder", "register"]

BUILD_SOURCES = ("naver", "civitai", "urls", "folder")
_MAX_URLS = 100_000
_BUILD_KEYS: dict[str, type] = {
    "query": str,
    "source": str,
    "limit": int,
    "out": str,
    "overwrite": bool,
    "min_side": int,
    "min_sharpness": float,
    "eps": float,
    "method": str,
    "min_similarity": float,
    "prompts": list,
    "negative_prompts": list,
    "root": str,
    "urls": list,
    "path": str,
    "hf_metadata": bool,
}


def dataset_folder(settings: Settings, collection: str, out: str | None, query: str) -> Path:
    """Where a web-started build writes: ``<collection dir>/datasets/<out or the query>``.

    ``out`` is a folder name (or a relative path) under that ``datasets`` folder; a path that
    leaves it (absolute, ``..``) is refused, so a request can never write elsewhere."""
    from clipatlas.dataset.naming import safe_name

    root = (settings.collection_dir(collection) / "datasets").resolve()
    if out is None or not out.strip():
        return root / safe_name(query)
    rel = Path(out.strip())
    if rel.is_absolute() or ".." in rel.parts:
        raise ConfigError(f"build-dataset: out must be a folder name under {root}, got {out!r}")
    folder = (root / rel).resolve()
    if root not in folder.parents:
        raise ConfigError(f"build-dataset: out {out!r} leaves {root}")
    return folder


def check_build(params: Mapping[str, Any], settings: Settings, collection: str) -> dict[str, Any]:
    out = _typed(params, _BUILD_KEYS, "build-dataset")
    query = out.get("query", "")
    if not query.strip():
        raise ConfigError("build-dataset: query is required")
    source = out.setdefault("source", "naver")
    if source not in BUILD_SOURCES:
        raise ConfigError(f"build-dataset: source must be one of {', '.join(BUILD_SOURCES)}")
    limit = out.setdefault("limit", 100)
    if not 1 <= limit <= 100_000:
        raise ConfigError(f"build-dataset: limit must be 1..100000, got {limit}")
    for key, low in (("min_side", 1), ("min_sharpness", 0.0)):
        if key in out and out[key] < low:
            raise ConfigError(f"build-dataset: {key} must be at least {low}, got {out[key]}")
    if "eps" in out and not 0 < out["eps"] < 2:
        raise ConfigError(f"build-dataset: eps must be between 0 and 2, got {out['eps']}")
    for key in ("prompts", "negative_prompts"):
        if key in out and not all(isinstance(p, str) for p in out[key]):
            raise ConfigError(f"build-dataset: {key} must be a list of strings")
    if source == "folder":
        root = out.get("root")
        if not root or not Path(root).expanduser().is_dir():
            raise ConfigError(f"build-dataset: a folder build needs root, a folder: {root!r}")
        out["root"] = str(Path(root).expanduser().resolve())
    elif source == "urls" and "path" not in out:
        urls = [u.strip() for u in out.pop("urls", []) if isinstance(u, str) and u.strip()]
        if not urls or len(urls) > _MAX_URLS:
            raise ConfigError(f"build-dataset: a URL build needs 1..{_MAX_URLS} urls")
        folder = settings.collection_dir(collection) / "job-inputs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"dataset-urls-{uuid.uuid4().hex[:12]}.txt"
        path.write_text("\n".join(urls) + "\n", encoding="utf-8")
        out["path"] = str(path)
    elif source == "urls" and not Path(out["path"]).is_file():
        raise ConfigError(f"build-dataset: {out['path']!r} is not a file")
    folder = dataset_folder(settings, collection, out.get("out"), query)
    if folder.is_dir() and any(folder.iterdir()) and not out.get("overwrite"):
        raise ConfigError(
            f"build-dataset: {folder.name!r} exists and is not empty (tick overwrite to replace)"
        )
    out["out"] = str(folder)
    return out


def run_build(ctx: JobContext) -> dict[str, Any]:
    from clipatlas.dataset import ExportConfig, MeaningConfig, QualityConfig

    p = dict(ctx.params)
    quality = {k: p[k] for k in ("min_side", "min_sharpness") if k in p}
    meaning: dict[str, Any] = {k: p[k] for k in ("eps", "method", "min_similarity") if k in p}
    for key in ("prompts", "negative_prompts"):
        if p.get(key):
            meaning[key] = tuple(p[key])
    export = ExportConfig(
        overwrite=bool(p.get("overwrite")), hf_metadata=bool(p.get("hf_metadata"))
    )
    options = {"root": p["root"]} if p["source"] == "folder" else {}
    if p["source"] == "urls":
        options = {"path": p["path"]}

    def progress(event: ProgressEvent) -> None:
        # the stop hook ends the build itself, so the build's own row says "cancelled" too
        with contextlib.suppress(OperationCancelled):
            ctx.progress(event)

    ctx.log(f"building {p['query']!r} from {p['source']} into {p['out']}")
    with ctx.atlas() as atlas:
        try:
            build = atlas.build_dataset(
                p["query"],
                p["out"],
                source=p["source"],
                limit=p["limit"],
                source_options=options,
                quality=QualityConfig(**quality),
                meaning=MeaningConfig(**meaning),
                export=export,
                progress=progress,
                should_stop=ctx.should_stop,
            )
        except BuildCancelledError as exc:
            ctx.log(str(exc))
            raise OperationCancelled("build-dataset") from None
    ctx.log(f"build {build.build_id}: kept {build.kept} of {build.candidates}")
    result = build.as_dict()
    result.pop("outcomes", None)
    return result


_CAPTION_KEYS: dict[str, type] = {
    "model": str,
    "k": int,
    "prompt_chars": int,
    "language": str,
    "retrieval": bool,
    "redo": bool,
    "item_ids": list,
}


def check_caption(params: Mapping[str, Any], settings: Settings, collection: str) -> dict[str, Any]:
    out = _typed(params, _CAPTION_KEYS, "caption")
    if "k" in out and not 0 <= out["k"] <= 50:
        raise ConfigError(f"caption: k (neighbours) must be 0..50, got {out['k']}")
    if "prompt_chars" in out and not 40 <= out["prompt_chars"] <= 100_000:
        raise ConfigError(f"caption: prompt_chars must be 40..100000, got {out['prompt_chars']}")
    if out.get("language", "en") not in ("en", "ko"):
        raise ConfigError("caption: language must be en or ko")
    model = out.get("model")
    if model is not None and (":" not in model or not model.strip()):
        raise ConfigError(f"caption: model must look like openai-compatible:<name>, got {model!r}")
    ids = out.get("item_ids")
    if ids is not None and not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ConfigError("caption: item_ids must be a list of integers")
    return out


def run_caption(ctx: JobContext) -> dict[str, Any]:
    p = dict(ctx.params)
    ids = p.pop("item_ids", None)
    with ctx.atlas(create=False) as atlas:
        ctx.log(f"captioning {'all items' if ids is None else f'{len(ids)} items'}")
        report = atlas.caption(ids, progress=ctx.progress, **p)
    return report.as_dict()


def register(kinds: JobKinds) -> None:
    kinds.add(
        JobKind("build-dataset", run_build, check_build, "Build a clean dataset from a query")
    )
    kinds.add(JobKind("caption", run_caption, check_caption, "Caption items (resumable)"))
