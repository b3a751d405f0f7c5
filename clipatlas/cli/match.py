"""``clipatlas import-records``, ``clipatlas match`` and ``clipatlas calibrate-match``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clipatlas.atlas import Atlas
from clipatlas.cli.common import Collection, Json, NewModel, TextModel, settings_of
from clipatlas.cli.render import console, print_json, progress_bar
from clipatlas.errors import MatchConfigError
from clipatlas.matching import Calibration, RecordMatch, RecordSpec

commands = typer.Typer()

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


@commands.command("import-records")
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
    model: NewModel = None,
    text_model: TextModel = None,  # CLIPATLAS_MATCH_TEXT_MODEL
    json_out: Json = False,
) -> None:
    """Import records (text, optional category/place/time/photo); bad rows are listed, and
    records stored already (the same content) are counted, not imported again."""
    settings = settings_of(ctx)
    updates: dict[str, Any] = {}
    if allow_host:
        updates["allow_hosts"] = [*settings.allow_hosts, *allow_host]
    if text_model:
        updates["match_text_model"] = text_model
    settings = settings.model_copy(update=updates)
    with (
        Atlas.open(collection, settings=settings, model=model) as atlas,
        progress_bar(not json_out) as progress,
    ):
        report = atlas.import_records(
            path, _spec(id_field, text_field), replace=replace, progress=progress
        )
    if json_out:
        print_json(report.as_dict())
        return
    if not report.imported and report.already_present:
        console.print(
            f"nothing new: {report.already_present} records already present, 0 added"
            + (f", {report.failed} not imported" if report.failed else "")
        )
    else:
        console.print(
            f"import {report.import_id}: {report.imported} records "
            f"({report.with_photo} with a photo), {report.already_present} already present, "
            f"{report.failed} not imported"
        )
    for error in report.errors:
        console.print(f"  {error}", markup=False)


def match_json(
    cal: Calibration, results: dict[str, list[RecordMatch]], threshold: float | None
) -> dict[str, Any]:
    """The one ``--json`` shape of ``match`` (a stored id, ``--text``/``--photo`` or
    ``--batch``): the parameters decided with, then one entry per query record."""
    return {
        "calibration": {
            "id": cal.id,
            "source": cal.source,
            "method": cal.method,
            "threshold": cal.threshold,
            "thresholds": dict(cal.thresholds),
        },
        "threshold_override": threshold,
        "results": [
            {"record": key, "matches": [m.as_dict() for m in ms]} for key, ms in results.items()
        ],
    }


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


@commands.command("match")
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
    cal: Calibration
    with (
        Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas,
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
        cal = atlas.records().calibration()
    if json_out:
        print_json(match_json(cal, results, threshold))
        return
    for key, ms in results.items():
        _print_matches(key, ms)


@commands.command("calibrate-match")
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
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
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
        f"threshold {cal.threshold:.4f}, on these pairs: precision {r['precision']:.3f}, "
        f"recall {r['recall']:.3f}, F1 {r['f1']:.3f}"
    )
    if cal.thresholds:
        console.print(
            "  thresholds per pattern: "
            + ", ".join(f"{k} {v:.4f}" for k, v in sorted(cal.thresholds.items()))
        )
    v = r.get("validation", {})
    for name in ("components", "fixed"):
        if name in v:
            lo, hi = v[name]["ci95"]
            console.print(
                f"  held out ({v['folds']}-fold): {name} F1 {v[name]['f1']:.3f} "
                f"(95% CI {lo:.3f}-{hi:.3f})"
            )
    used = "fitted components" if cal.method == "components" else "fixed 0.3/0.7 fusion"
    console.print(f"  used: {used} ({v.get('reason', 'not validated')})", markup=False)
    if r.get("unknown_pairs"):
        console.print(f"  {r['unknown_pairs']} pairs name unknown records (skipped)")
    table = Table("component", "weight", "slope", "intercept", "fitted", "AUC", box=None)
    for name, c in cal.params()["components"].items():
        auc = r.get("components", {}).get(name, {}).get("auc")
        table.add_row(
            name,
            f"{c['weight']:.2f}",
            f"{c['slope']:.3f}",
            f"{c['intercept']:.3f}",
            "yes" if c["fitted"] else "no",
            "-" if auc is None else f"{auc:.3f}",
        )
    console.print(table)
    console.print(f"category rule: {cal.category_rule} (penalty {cal.category_penalty:g})")


@commands.command("match-config")
def match_config(
    ctx: typer.Context,
    collection: Collection = "default",
    threshold: Annotated[
        float | None, Opt(help="Decision threshold in (0, 1), for every modality pattern.")
    ] = None,
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
    with Atlas.open(collection, settings=settings_of(ctx), create=False) as atlas:
        matcher = atlas.records()
        cal = matcher.configure(**changes) if changes else matcher.calibration()
    if json_out:
        print_json({"id": cal.id, **cal.params()})
        return
    console.print(
        f"{cal.source} parameters (calibration {cal.id or '-'}, {cal.method}): threshold "
        f"{cal.threshold:.4f}, category rule {cal.category_rule} "
        f"(penalty {cal.category_penalty:g}), {len(cal.category_synonyms)} synonyms"
    )
    for pattern, value in sorted(cal.thresholds.items()):
        console.print(f"  threshold {pattern}: {value:.4f}")
    for name, c in cal.params()["components"].items():
        console.print(
            f"  {name:9s} weight {c['weight']:.2f}  log-odds = {c['slope']:.3f} x raw "
            f"{c['intercept']:+.3f}{'' if c['fitted'] else '  (default)'}"
        )
