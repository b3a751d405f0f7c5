"""``clipatlas build-dataset QUERY``: a search word in, a clean image dataset out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipatlas.atlas import Atlas
from clipatlas.cli.common import Json, settings_of
from clipatlas.cli.render import console, err_console, print_json, progress_bar
from clipatlas.dataset import ExportConfig, MeaningConfig, QualityConfig, safe_name, slug
from clipatlas.errors import ConfigError

commands = typer.Typer()

Opt = typer.Option
_PATH_SOURCES = {"folder": "root", "urls": "path"}
MAX_DISPLAY = 100  # Naver's display limit (clipatlas.sources.naver.MAX_DISPLAY, not imported:
# it would load the HTTP stack with the CLI; tests/test_dataset_evidence.py checks they agree)


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


@commands.command("build-dataset")
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
    tie_ratio: Annotated[float, Opt(help="Size share of the biggest that is a tie.")] = 0.5,
    text_z: Annotated[float, Opt(help="Text evidence (z) that breaks a tie.")] = 3.0,
    veto_z: Annotated[float, Opt(help="Text evidence (z) that vetoes a cluster.")] = 6.0,
    min_share: Annotated[float, Opt(help="Smallest share a chosen cluster may have.")] = 0.1,
    allow_small: Annotated[bool, Opt(help="Export a cluster below --min-share.")] = False,
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
    display: Annotated[
        int | None,
        Opt(min=1, max=MAX_DISPLAY, help="Naver results per search request (1..100, default 100)."),
    ] = None,
    allow_host: Annotated[list[str] | None, Opt(help="Allow a non-public host.")] = None,
    json_out: Json = False,
) -> None:
    """Collect pictures of QUERY, drop junk and off-topic ones, export a clean dataset."""
    settings = settings_of(ctx)
    if allow_host:
        settings = settings.model_copy(update={"allow_hosts": [*settings.allow_hosts, *allow_host]})
    quality = QualityConfig(
        min_side, min_aspect, max_aspect, min_sharpness,
        None if phash_distance < 0 else phash_distance, None if dup_cosine > 1 else dup_cosine,
    )  # fmt: skip
    meaning = MeaningConfig(
        method=method, eps=eps, min_samples=min_samples, min_cluster_size=min_cluster_size,
        prompts=tuple(prompt or ()), negative_prompts=tuple(negative or ()),
        positive_images=tuple(str(p) for p in positive_image or ()),
        negative_images=tuple(str(p) for p in negative_image or ()), outlier_z=outlier_z,
        min_similarity=min_similarity, tie_ratio=tie_ratio, text_z=text_z, veto_z=veto_z,
        min_share=min_share, allow_small=allow_small,
    )  # fmt: skip
    if display is not None and source != "naver":
        raise ConfigError(f"--display is the Naver page size, not an option of {source}")
    options = _source_options(source, input_path, sort=sort, size_filter=size, display=display)
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
    lines = [
        f"{result.kept} pictures of {query!r} in {result.out} "
        f"({result.candidates} candidates, {result.seconds:.1f}s)",
        *(f"  dropped {key}: {n}" for key, n in result.dropped.items()),
    ]
    chosen = next((c for c in result.clusters if c.get("chosen")), None)
    if chosen is not None:
        clustered = sum(c["size"] for c in result.clusters)
        lines.append(
            f"  cluster {chosen['label']} chosen by {result.decided_by} "
            f"({chosen['size']} of {clustered} clustered pictures)"
        )
    lines.append(f"dropped.jsonl: {result.out / 'dropped.jsonl'}")
    for line in lines:
        console.print(line, markup=False)
    for w in result.warnings:
        err_console.print(f"warning ({w['code']}): {w['message']}", markup=False)
    if result.report is not None:
        console.print(f"report: {result.report}", markup=False)
