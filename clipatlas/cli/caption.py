"""``clipatlas import-captions``, ``caption``, ``caption-eval``, ``captions`` and
``split-captions``: retrieval-augmented captioning from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clipatlas.atlas import Atlas
from clipatlas.cli.common import Collection, Json, NewModel, TextModel, settings_of
from clipatlas.cli.render import console, print_json, progress_bar
from clipatlas.settings import Settings

commands = typer.Typer()

Opt = typer.Option
Model = Annotated[
    str | None,
    Opt("--model", "-m", help="Caption backend: openai-compatible:<model> or hf:<path>."),
]
BaseUrl = Annotated[
    str | None, Opt(help="OpenAI-compatible base URL (CLIPATLAS_CAPTION_BASE_URL).")
]
Language = Annotated[str | None, Opt(help="Caption language: en or ko.")]
PromptFile = Annotated[Path | None, Opt(help="Prompt template file with {examples}.")]
K = Annotated[int | None, Opt("-k", help="Neighbours whose captions go into the prompt.")]
PromptChars = Annotated[
    int | None,
    Opt(
        min=40,
        help="Characters of neighbours' caption lines in a prompt, shared round-robin so every "
        "neighbour is represented (CLIPATLAS_CAPTION_PROMPT_CHARS, default 1500).",
    ),
]


def _caption_settings(ctx: typer.Context, base_url: str | None) -> Settings:
    settings = settings_of(ctx)
    return settings.model_copy(update={"caption_base_url": base_url}) if base_url else settings


@commands.command("import-captions")
def import_captions(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            help="Flickr8k-style folder, JSONL/CSV/TSV file, or a "
            "saved Hugging Face dataset folder."
        ),
    ],
    collection: Collection = "default",
    images: Annotated[Path | None, Opt(help="Folder the image names are relative to.")] = None,
    image_column: Annotated[str | None, Opt(help="Image column (default: guessed).")] = None,
    caption_column: Annotated[str | None, Opt(help="Caption column (default: guessed).")] = None,
    hf_split: Annotated[str | None, Opt(help="Split of a saved DatasetDict.")] = None,
    test_fraction: Annotated[float, Opt(help="Share held out for caption-eval.")] = 0.1,
    seed: Annotated[int, Opt(help="Seed of the train/test split.")] = 0,
    model: NewModel = None,
    text_model: TextModel = None,  # CLIPATLAS_TEXT_MODEL
    json_out: Json = False,
) -> None:
    """Import pictures with their captions (several per picture) and split train/test."""
    settings = settings_of(ctx)
    if text_model:
        settings = settings.model_copy(update={"text_model": text_model})
    with (
        Atlas.open(collection, settings=settings, model=model) as atlas,
        progress_bar(not json_out) as progress,
    ):
        report = atlas.import_captions(
            path,
            images=images,
            image_column=image_column,
            caption_column=caption_column,
            hf_split=hf_split,
            test_fraction=test_fraction,
            seed=seed,
            progress=progress,
        )
    if json_out:
        print_json(report.as_dict())
        return
    console.print(
        f"{report.dataset}: {report.items} pictures with {report.captions} captions "
        f"(split: {report.split.get('train', 0)} train, {report.split.get('test', 0)} test)",
        markup=False,
    )
    for error in report.errors:
        console.print(f"  {error['image']}: {error['reason']} {error['detail']}", markup=False)


@commands.command()
def caption(
    ctx: typer.Context,
    images: Annotated[
        list[Path] | None,
        typer.Argument(help="New pictures to add and caption (default: the whole collection)."),
    ] = None,
    collection: Collection = "default",
    model: Model = None,
    base_url: BaseUrl = None,
    k: K = None,
    prompt_chars: PromptChars = None,
    no_retrieval: Annotated[
        bool, Opt("--no-retrieval", help="Plain prompt, no neighbours.")
    ] = False,
    language: Language = None,
    prompt_file: PromptFile = None,
    redo: Annotated[
        bool, Opt(help="Caption again items already captioned by this model+prompt.")
    ] = False,
    json_out: Json = False,
) -> None:
    """Caption pictures with the retrieval-augmented prompt (resumable; errors per item)."""
    options: dict[str, Any] = dict(
        model=model,
        k=k,
        prompt_chars=prompt_chars,
        retrieval=not no_retrieval,
        language=language,
        prompt_file=prompt_file,
        redo=redo,
    )
    problems: list[dict[str, Any]] = []
    with (
        Atlas.open(collection, settings=_caption_settings(ctx, base_url)) as atlas,
        progress_bar(not json_out) as progress,
    ):
        if images:
            report, problems = atlas.captions().caption_files(images, progress=progress, **options)
        else:
            report = atlas.caption(progress=progress, **options)
    if json_out:
        print_json({**report.as_dict(), "files": problems})
        return
    console.print(
        f"{report.model} ({report.prompt_version}): {report.captioned} captioned, "
        f"{report.failed} failed, {report.skipped} already done",
        markup=False,
    )
    for item_id, text in list(report.captions.items())[:20]:
        console.print(f"  {item_id}: {text}", markup=False)
    for error in report.errors + problems:
        console.print(
            f"  error {error.get('item_id', error.get('file'))}: {error['reason']} "
            f"{error['detail']}",
            markup=False,
        )


@commands.command("caption-eval")
def caption_eval(
    ctx: typer.Context,
    collection: Collection = "default",
    model: Model = None,
    base_url: BaseUrl = None,
    n: Annotated[int, Opt("-n", min=1, help="Held-out pictures to caption.")] = 50,
    k: K = None,
    prompt_chars: PromptChars = None,
    seed: Annotated[int, Opt(help="Which held-out pictures (order seed).")] = 0,
    language: Language = None,
    prompt_file: PromptFile = None,
    out: Annotated[Path | None, Opt(help="Report folder (default: under the collection).")] = None,
    json_out: Json = False,
) -> None:
    """Caption held-out pictures with and without retrieval; score against references."""
    with (
        Atlas.open(collection, settings=_caption_settings(ctx, base_url), create=False) as atlas,
        progress_bar(not json_out) as progress,
    ):
        report = atlas.caption_eval(
            model=model,
            n=n,
            k=k,
            prompt_chars=prompt_chars,
            seed=seed,
            language=language,
            prompt_file=prompt_file,
            out_dir=out,
            progress=progress,
        )
    if json_out:
        print_json({key: v for key, v in report.items() if key != "items"})
        return
    table = Table("", "BLEU-4", "ROUGE-L", "embedding sim.", "failed", box=None)
    for name in ("plain", "rag"):
        s = report["summary"][name]
        table.add_row(
            name,
            *(
                ("-" if s[m] is None else f"{s[m]:.4f}")
                for m in ("bleu4", "rougeL", "embedding_similarity")
            ),
            str(s["failed"]),
        )
    console.print(
        f"{report['model']}: {report['n']} held-out pictures, k={report['k']}", markup=False
    )
    console.print(table)
    console.print(f"report: {report['html']}\n        {report['json']}", markup=False)


@commands.command("captions")
def captions_(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="Item id.")],
    collection: Collection = "default",
    json_out: Json = False,
) -> None:
    """Show an item's captions (references, generated ones and errors, with provenance)."""
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        found = atlas.captions().of_item(item_id)
    if json_out:
        print_json([c.as_dict(provenance=True) for c in found])
        return
    for c in found:
        what = c.text if c.status == "ok" else f"error {c.reason}: {c.detail}"
        console.print(f"{c.kind:9} {c.model} {c.prompt_version}: {what}", markup=False)


@commands.command("split-captions")
def split_captions(
    ctx: typer.Context,
    collection: Collection = "default",
    test_fraction: Annotated[float, Opt(help="Share held out for caption-eval.")] = 0.1,
    seed: Annotated[int, Opt(help="Seed.")] = 0,
    json_out: Json = False,
) -> None:
    """Redo the seeded train/test split of the captioned pictures."""
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        counts = atlas.captions().split(test_fraction=test_fraction, seed=seed)
    if json_out:
        print_json(counts)
    else:
        console.print(f"train {counts.get('train', 0)}, test {counts.get('test', 0)}")
