"""The built-in job kinds: ingest (folder, URL list, Naver, CivitAI), cluster and map.

Each is a thin wrapper over :class:`clipatlas.Atlas`; ``check`` validates parameters when the
job is submitted. Every operation is idempotent, so a resumed job redoes only what is missing:
ingest skips committed (source, key) rows; cluster and map simply run again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clipatlas.errors import ConfigError
from clipatlas.jobs.kinds import JobContext, JobKind, JobKinds
from clipatlas.settings import Settings
from clipatlas.wording import counted

__all__ = ["INGEST_SOURCES", "register"]

INGEST_SOURCES = ("folder", "urls", "naver", "civitai")
_MAX_URLS = 100_000
_CLUSTER_KEYS = {
    "method": str,
    "k": int,
    "k_range": list,
    "eps": float,
    "min_samples": int,
    "min_cluster_size": int,
    "pca_dims": int,
    "sample": int,
    "seed": int,
}


def _typed(params: Mapping[str, Any], allowed: Mapping[str, type], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in allowed:
            raise ConfigError(f"{what}: unknown parameter {key!r} ({', '.join(sorted(allowed))})")
        if value is None:
            continue
        want = allowed[key]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
            raise ConfigError(f"{what}: parameter {key!r} must be {want.__name__}, got {value!r}")
        out[key] = value
    return out


# -- ingest ------------------------------------------------------------------------------------


def check_ingest(params: Mapping[str, Any], settings: Settings, collection: str) -> dict[str, Any]:
    source = params.get("source")
    if source not in INGEST_SOURCES:
        raise ConfigError(f"ingest: source must be one of {', '.join(INGEST_SOURCES)}")
    options = dict(params.get("options") or {})
    if not isinstance(params.get("options", {}) or {}, dict):
        raise ConfigError("ingest: options must be an object")
    if source == "folder":
        root = options.get("root")
        if not isinstance(root, str) or not root.strip():
            raise ConfigError("ingest: a folder ingest needs options.root (a folder path)")
        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"ingest: {root!r} is not a folder on the server")
        options["root"] = str(folder.resolve())
    elif source == "urls":
        urls = params.get("urls")
        if urls is not None:  # a pasted list: kept in a file beside the collection
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise ConfigError("ingest: urls must be a list of strings")
            lines = [u.strip() for u in urls if u.strip()]
            if not lines or len(lines) > _MAX_URLS:
                raise ConfigError(f"ingest: give between 1 and {_MAX_URLS} URLs")
            folder = settings.collection_dir(collection) / "job-inputs"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"urls-{uuid.uuid4().hex[:12]}.txt"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            options["path"] = str(path)
        elif not isinstance(options.get("path"), str) or not Path(options["path"]).is_file():
            raise ConfigError("ingest: a URL ingest needs urls (a list) or options.path (a file)")
    elif source == "naver" and not options.get("query"):
        raise ConfigError("ingest: a Naver ingest needs options.query")
    limit = options.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError("ingest: options.limit must be a positive integer")
    allow = params.get("allow_hosts") or []
    if not isinstance(allow, list) or not all(isinstance(h, str) for h in allow):
        raise ConfigError("ingest: allow_hosts must be a list of host names")
    model = params.get("model")
    if model is not None and not isinstance(model, str):
        raise ConfigError(
            "ingest: model must be a string such as 'hf:openai/clip-vit-base-patch32'"
        )
    return {
        "source": source,
        "options": options,
        "model": model,
        "embed": bool(params.get("embed", True)),
        "allow_hosts": allow,
        "incremental": bool(params.get("incremental", False)),
    }


def run_ingest(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    settings = ctx.settings
    if p.get("allow_hosts"):
        settings = settings.model_copy(
            update={"allow_hosts": [*settings.allow_hosts, *p["allow_hosts"]]}
        )
    options = dict(p.get("options") or {})
    with ctx.atlas(settings=settings, model=p.get("model")) as atlas:
        kind = p["source"]
        if p.get("incremental"):
            options["known"] = set(atlas.store.known_keys(atlas.collection, kind))
        try:
            source = atlas.source(kind, **options)
        except TypeError as exc:  # an option that this source does not take
            raise ConfigError(f"source {kind!r}: {exc}") from None
        ctx.log(f"ingesting from {kind}")
        report = atlas.ingest(source, embed=p.get("embed", True), progress=ctx.progress)
    return report.as_dict()


# -- cluster and map ---------------------------------------------------------------------------


def check_cluster(params: Mapping[str, Any], settings: Settings, collection: str) -> dict[str, Any]:
    out = _typed(params, _CLUSTER_KEYS, "cluster")
    if out.get("method", "auto") not in ("auto", "kmeans", "dbscan", "hdbscan"):
        raise ConfigError("cluster: method must be auto, kmeans, dbscan or hdbscan")
    if "k_range" in out:
        kr = out["k_range"]
        if len(kr) != 2 or not all(isinstance(v, int) for v in kr):
            raise ConfigError("cluster: k_range must be two integers")
    return out


def run_cluster(ctx: JobContext) -> dict[str, Any]:
    params = dict(ctx.params)
    if "k_range" in params:
        params["k_range"] = tuple(params["k_range"])
    with ctx.atlas(create=False) as atlas:
        run = atlas.cluster(**params, progress=ctx.progress)
        ctx.log(f"run {run.id}: {counted(run.n_clusters, 'cluster')}, {run.n_noise} noise")
        return run.summary()


def check_map(params: Mapping[str, Any], settings: Settings, collection: str) -> dict[str, Any]:
    out = _typed(params, {"run_id": int, "sample": int, "seed": int}, "map")
    if "run_id" not in out:
        raise ConfigError("map: run_id is required")
    return out


def run_map(ctx: JobContext) -> dict[str, Any]:
    params = dict(ctx.params)
    run_id = params.pop("run_id")
    with ctx.atlas(create=False) as atlas:
        result = atlas.map(run_id, **params, progress=ctx.progress)
    return result.as_dict()


def register(kinds: JobKinds) -> None:
    kinds.add(JobKind("ingest", run_ingest, check_ingest, "Ingest pictures from a source"))
    kinds.add(JobKind("cluster", run_cluster, check_cluster, "Cluster a collection"))
    kinds.add(JobKind("map", run_map, check_map, "Draw the atlas map of a run"))
