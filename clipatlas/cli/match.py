"""``clipatlas import-records``, ``clipatlas match`` and ``clipatlas calibrate-match``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clipatlas.atlas import Atlas
from clipatlas.cli.app import Collection, Json, _settings, app
from clipatlas.cli.render import console, print_json, progress_bar
from clipatlas.errors import MatchConfigError
from clipatlas.matching import RecordMatch, RecordSpec

Opt = typer.Option


def _spec(id_field: str, text_fields: list[str] | None) -> RecordSpec:
    return RecordSpec(id_field=id_field, text_fields=tuple(text_fields or ("description",)))


def _synonyms(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MatchConfigError("synonyms", f"{path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise MatchConfigError("synonyms", f"{path}: expected a JSON object of word -> category")
    return {str(k).strip().lower(): v.strip().lower() for k, v in data.items()}


@app.command("import-records")
def import_records(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Records: .jsonl or .csv.")],
    collection: Collection = "default",
    id_field: Annotated[str, Opt(help="Column holding the record id.")] = "id",
    text_field: Annotated[
        list[str] | None, Opt("--text-field", help="Text column (repeat; default description).")
    ] = None,
    replace: Annotated[bool, Opt("--replace", help="Replace records already stored.")] = False,
    allow_host: Annotated[
        list[str] | None, Opt("--allow-host", help="Host that photo URLs may use though private.")
    ] = None,
    json_out: Json = False,
) -> None:
    """Import records (text, optional category/place/time/photo); bad rows are listed."""
    settings = _settings(ctx)
    if allow_host:
        settings = settings.model_copy(update={"allow_hosts": [*settings.allow_hosts, *allow_host]})
    with (
        Atlas.open(collection, settings=settings) as atlas,
        progress_bar(not json_out) as progress,
    ):
        report = atlas.import_records(
            path, _spec(id_field, text_field), replace=replace, progress=progress
        )
    if json_out:
        print_json(report.as_dict())
        return
    console.print(
        f"import {report.import_id}: {report.imported} records "
        f"({report.with_photo} with a photo), {report.failed} not imported"
    )
    for error in report.errors:
        console.print(f"  {error}", markup=False)


def _print_matches(key: str, matches: list[RecordMatch]) -> None:
    if not matches:
        console.print(f"{key}: no match above the threshold", markup=False)
        return
    table = Table(
        "rank",
        "score",
        "record",
        "components",
        "text",
        box=None,
        pad_edge=False,
        title=key,
        title_justify="left",
    )
    for rank, m in enumerate(matches, 1):
        parts = " ".join(
            f"{c['component']}={c['raw']:.2f}x{c['weight']:.2f}"
            for c in m.explanation["components"]
        )
        if m.explanation["category"]["effect"] != "none":
            parts += f" [{m.explanation['category']['effect']}]"
        table.add_row(str(rank), f"{m.score:.3f}", m.key, parts, m.text[:60])
    console.print(table)


@app.command("match")
def match(
    ctx: typer.Context,
    record: Annotated[str | None, typer.Argument(help="A stored record id to match.")] = None,
    collection: Collection = "default",
    text: Annotated[str | None, Opt(help="Match a new record with this description.")] = None,
    photo: Annotated[Path | None, Opt(help="Photo of the new record.")] = None,
    category: Annotated[str | None, Opt(help="Category of the new record.")] = None,
    place: Annotated[str | None, Opt(help="Place of the new record.")] = None,
    time: Annotated[str | None, Opt(help="Time of the new record (ISO 8601).")] = None,
    batch: Annotated[
        bool, Opt("--batch", help="Match every record of an import against the others.")
    ] = False,
    import_id: Annotated[int | None, Opt(help="Import to match with --batch (latest).")] = None,
    kind: Annotated[
        str | None, Opt(help="With --batch: match every record of this kind (any import).")
    ] = None,
    against: Annotated[str | None, Opt(help="Only match records of this kind.")] = None,
    k: Annotated[int, Opt("-k", "--top", min=1, help="Matches per record.")] = 5,
    threshold: Annotated[
        float | None, Opt(min=0.0, max=1.0, help="Override the calibrated threshold.")
    ] = None,
    json_out: Json = False,
) -> None:
    """Top matches of a record (stored id, or --text/--photo), or --batch for a whole import
    (or, with --kind, every record of a kind) against the other records."""
    if sum([record is not None, text is not None or photo is not None, batch]) != 1:
        raise typer.BadParameter("give exactly one of RECORD, --text/--photo or --batch")
    results: dict[str, list[RecordMatch]]
    with (
        Atlas.open(collection, settings=_settings(ctx), create=False) as atlas,
        progress_bar(batch and not json_out) as progress,
    ):
        opts: dict[str, Any] = {"k": k, "against_kind": against, "threshold": threshold}
        if batch:
            results = atlas.match_batch(import_id=import_id, kind=kind, progress=progress, **opts)
        elif record is not None:
            results = {record: atlas.match(record, **opts)}
        else:
            row = {
                "id": "<query>",
                "description": text,
                "category": category,
                "place": place,
                "time": time,
                "photo": str(photo) if photo else None,
            }
            results = {"<query>": atlas.match(row, **opts)}
    if json_out:
        print_json({key: [m.as_dict() for m in ms] for key, ms in results.items()})
        return
    for key, ms in results.items():
        _print_matches(key, ms)


@app.command("calibrate-match")
def calibrate_match(
    ctx: typer.Context,
    pairs: Annotated[Path, typer.Argument(help="Labelled pairs: .csv/.jsonl (left,right,same).")],
    collection: Collection = "default",
    target_precision: Annotated[
        float | None, Opt(help="Pick the threshold reaching this precision (else best F1).")
    ] = None,
    category_rule: Annotated[str | None, Opt(help="gate, penalty or off.")] = None,
    synonyms: Annotated[
        Path | None, Opt(help="JSON object mapping category words to a category.")
    ] = None,
    json_out: Json = False,
) -> None:
    """Fit fusion weights and the threshold on labelled pairs; saved with the collection."""
    with Atlas.open(collection, settings=_settings(ctx), create=False) as atlas:
        cal = atlas.calibrate_match(
            pairs,
            target_precision=target_precision,
            category_rule=category_rule,
            category_synonyms=_synonyms(synonyms),
        )
    if json_out:
        print_json({"id": cal.id, **cal.params(), "report": cal.report})
        return
    r = cal.report
    console.print(
        f"calibration {cal.id}: {r['pairs']} pairs ({r['positives']} matching), "
        f"threshold {cal.threshold:.4f}, precision {r['precision']:.3f}, "
        f"recall {r['recall']:.3f}, F1 {r['f1']:.3f}"
    )
    if r.get("unknown_pairs"):
        console.print(f"  {r['unknown_pairs']} pairs name unknown records (skipped)")
    table = Table("component", "weight", "slope", "intercept", "fitted", box=None)
    for name, c in cal.params()["components"].items():
        table.add_row(
            name,
            f"{c['weight']:.2f}",
            f"{c['slope']:.3f}",
            f"{c['intercept']:.3f}",
            "yes" if c["fitted"] else "no",
        )
    console.print(table)
    console.print(f"category rule: {cal.category_rule} (penalty {cal.category_penalty:g})")


@app.command("match-config")
def match_config(
    ctx: typer.Context,
    collection: Collection = "default",
    threshold: Annotated[float | None, Opt(help="Decision threshold in (0, 1).")] = None,
    category_rule: Annotated[str | None, Opt(help="gate, penalty or off.")] = None,
    category_penalty: Annotated[float | None, Opt(min=0.0, help="Log-odds penalty.")] = None,
    synonyms: Annotated[
        Path | None, Opt(help="JSON object mapping category words to a category.")
    ] = None,
    json_out: Json = False,
) -> None:
    """Show the matching parameters in use; with options, change and save them (no labels)."""
    changes: dict[str, Any] = {
        "threshold": threshold,
        "category_rule": category_rule,
        "category_penalty": category_penalty,
        "category_synonyms": _synonyms(synonyms),
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    with Atlas.open(collection, settings=_settings(ctx), create=False) as atlas:
        matcher = atlas.records()
        cal = matcher.configure(**changes) if changes else matcher.calibration()
    if json_out:
        print_json({"id": cal.id, **cal.params()})
        return
    console.print(
        f"{cal.source} parameters (calibration {cal.id or '-'}): threshold {cal.threshold:.4f}, "
        f"category rule {cal.category_rule} (penalty {cal.category_penalty:g}), "
        f"{len(cal.category_synonyms)} synonyms"
    )
    for name, c in cal.params()["components"].items():
        console.print(
            f"  {name:9s} weight {c['weight']:.2f}  log-odds = {c['slope']:.3f} x raw "
            f"{c['intercept']:+.3f}{'' if c['fitted'] else '  (default)'}"
        )
