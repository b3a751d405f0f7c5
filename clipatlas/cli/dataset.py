"""``clipatlas build-dataset QUERY``: a search word in, a clean image dataset out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipatlas.atlas import Atlas
from clipatlas.cli.app import Json, _settings, app
from clipatlas.cli.render import console, print_json, progress_bar
from clipatlas.dataset import ExportConfig, MeaningConfig, QualityConfig, safe_name, slug
from clipatlas.errors import ConfigError

Opt = typer.Option
_PATH_SOURCES = {"folder": "root", "urls": "path"}


def _source_options(source: str, input_path: Path | None, **given: Any) -> dict[str, Any]:
    options = {k: v for k, v in given.items() if v is not None}
    key = _PATH_SOURCES.get(source)
    if key is not None:
        if input_path is None:
            raise ConfigError(f"--source {source} needs --input (a folder or a URL-list file)")
        options[key] = input_path
    elif input_path is not None:
        raise ConfigError(f"--input is for --source folder or urls, not {source}")
    return options


@app.command("build-dataset")
def build_dataset(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What the dataset shows, e.g. '고양이'.")],
    source: Annotated[str, Opt(help="naver, civitai, urls or folder.")] = "naver",
    limit: Annotated[int, Opt(min=1, help="Pictures wanted in the dataset.")] = 100,
    out: Annotated[
        Path | None, Opt(help="Output folder (default: ./<query>, a portable name).")
    ] = None,
    input_path: Annotated[
        Path | None, Opt("--input", help="Folder or URL list (--source folder/urls).")
    ] = None,
    collection: Annotated[
        str | None, Opt("--collection", "-c", help="Collection (default: one per query).")
    ] = None,
    model: Annotated[str | None, Opt(help="Embedder for a new collection.")] = None,
    overwrite: Annotated[bool, Opt(help="Replace a non-empty output folder.")] = False,
    oversample: Annotated[float, Opt(min=1.0, help="Candidates collected per picture.")] = 2.0,
    min_side: Annotated[int, Opt(help="Smallest short side kept (px).")] = 300,
    min_aspect: Annotated[float, Opt(help="Smallest width/height kept.")] = 1 / 3,
    max_aspect: Annotated[float, Opt(help="Largest width/height kept.")] = 3.0,
    min_sharpness: Annotated[float, Opt(help="Laplacian sharpness threshold.")] = 100.0,
    phash_distance: Annotated[int, Opt(help="Near-duplicate pHash distance (-1: off).")] = 10,
    dup_cosine: Annotated[float, Opt(help="Near-duplicate cosine (above 1: off).")] = 0.99,
    method: Annotated[str, Opt(help="dbscan or hdbscan.")] = "dbscan",
    eps: Annotated[float, Opt(help="DBSCAN cosine distance.")] = 0.18,
    min_samples: Annotated[int, Opt(help="DBSCAN/HDBSCAN core neighbours.")] = 3,
    min_cluster_size: Annotated[int, Opt(help="HDBSCAN smallest cluster.")] = 5,
    size_weight: Annotated[float, Opt(help="Weight of cluster size vs relevance.")] = 0.35,
    prompt: Annotated[list[str] | None, Opt(help="Extra text describing the subject.")] = None,
    negative: Annotated[list[str] | None, Opt(help="Text describing what to avoid.")] = None,
    positive_image: Annotated[list[Path] | None, Opt(help="Example picture to match.")] = None,
    negative_image: Annotated[list[Path] | None, Opt(help="Example picture to avoid.")] = None,
    outlier_z: Annotated[float, Opt(help="Drop members this many deviations off.")] = 4.5,
    min_similarity: Annotated[float | None, Opt(help="Absolute relevance floor.")] = None,
    parquet: Annotated[bool, Opt(help="Also write manifest.parquet.")] = True,
    hf: Annotated[bool, Opt("--hf", help="Also write metadata.jsonl (HF imagefolder).")] = False,
    sort: Annotated[str | None, Opt(help="Naver/CivitAI sort order.")] = None,
    size: Annotated[str | None, Opt(help="Naver size filter.")] = None,
    allow_host: Annotated[list[str] | None, Opt(help="Allow a non-public host.")] = None,
    json_out: Json = False,
) -> None:
    """Collect pictures of QUERY, drop junk and off-topic ones, export a clean dataset."""
    settings = _settings(ctx)
    if allow_host:
        settings = settings.model_copy(update={"allow_hosts": [*settings.allow_hosts, *allow_host]})
    quality = QualityConfig(
        min_side, min_aspect, max_aspect, min_sharpness,
        None if phash_distance < 0 else phash_distance, None if dup_cosine > 1 else dup_cosine,
    )  # fmt: skip
    meaning = MeaningConfig(
        method, eps, min_samples, min_cluster_size, size_weight, tuple(prompt or ()),
        tuple(negative or ()), tuple(str(p) for p in positive_image or ()),
        tuple(str(p) for p in negative_image or ()), outlier_z, min_similarity,
    )  # fmt: skip
    options = _source_options(source, input_path, sort=sort, size_filter=size)
    target = out if out is not None else Path.cwd() / safe_name(query)
    name = collection or f"dataset-{slug(query)}"
    with (
        Atlas.open(name, settings=settings, model=model) as atlas,
        progress_bar(not json_out) as progress,
    ):
        result = atlas.build_dataset(
            query, target, source=source, limit=limit, source_options=options,
            progress=progress, quality=quality, meaning=meaning, oversample=oversample,
            export=ExportConfig(overwrite=overwrite, parquet=parquet, hf_metadata=hf),
        )  # fmt: skip
    if json_out:
        print_json({"collection": name, **result.as_dict()})
        return
    console.print(
        f"{result.kept} pictures of {query!r} in {result.out} "
        f"({result.candidates} candidates, {result.seconds:.1f}s)",
        markup=False,
    )
    for key, n in result.dropped.items():
        console.print(f"  dropped {key}: {n}", markup=False)
    if result.report is not None:
        console.print(f"report: {result.report}", markup=False)
