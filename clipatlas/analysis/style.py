"""The style-atlas workflow on a stored run: name clusters, classify new things, recommend
clusters for a prompt, and place items that arrived after the run.

:class:`clipatlas.analysis.runs.Runs` (behind ``atlas.name_clusters``/``rename_cluster``/
``classify``/``recommend``/``assign_new``) calls these with the collection's engine; the
maths is in :mod:`clipatlas.analysis.clustering.naming` and
:mod:`clipatlas.analysis.clustering.classify`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clipatlas.analysis.clustering.classify import RunModel
from clipatlas.analysis.clustering.kmeans import normalise
from clipatlas.analysis.clustering.naming import (
    DEFAULT_VOCABULARY,
    NAMING_TEMPLATES,
    embed_phrases,
    name_clusters,
)
from clipatlas.errors import ClipatlasError, ClusterParameterError, ConfigError, EmbedderError
from clipatlas.store.model_links import links_of
from clipatlas.store.run_notes import RunNotes
from clipatlas.store.runs import NOISE, ClusterRun
from clipatlas.wording import counted

if TYPE_CHECKING:
    from clipatlas.engine import Engine

__all__ = [
    "RECOMMEND_TEMPLATES",
    "ArrivalReport",
    "assign_new",
    "cluster_names",
    "member_vectors",
    "recommend",
    "rename_cluster",
]

RECOMMEND_TEMPLATES: tuple[str, ...] = (
    "{}",
    "an image in the style of {}",
    "a picture of {}",
    "artwork of {}",
)
_NAMING_SAMPLE = 2000  # members per cluster whose provenance is read for tags
ADVISE_UNKNOWN_SHARE = 0.2  # unknown arrivals above this share: re-cluster advised
ADVISE_GROWTH = 0.5  # arrivals above this share of the run's items: re-cluster advised
ADVISE_MIN_ARRIVALS = 20


def member_vectors(engine: Engine, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found ids, their vectors as float32) from the collection's index, in the given order."""
    index = engine.index()
    order = np.argsort(index.ids, kind="stable")
    sorted_ids = index.ids[order]
    pos = np.searchsorted(sorted_ids, item_ids)
    pos = np.clip(pos, 0, max(len(sorted_ids) - 1, 0))
    found = (sorted_ids[pos] == item_ids) if len(sorted_ids) else np.zeros(len(item_ids), bool)
    rows = order[pos[found]]
    return item_ids[found], np.asarray(index.matrix[rows], dtype=np.float32)


def _text_embed(engine: Engine, dim: int) -> Any:
    """The collection's text tower, or None when its embedder cannot embed text here or its
    text vectors are not ``dim``-d like the run's (vectors imported from another model)."""
    try:
        embedder = engine.embedder()
        probe = embedder.embed_texts(["probe"])
    except (EmbedderError, ConfigError):
        return None
    if np.asarray(probe).shape[-1] != dim:
        return None
    return embedder.embed_texts


def cluster_names(
    engine: Engine,
    run: ClusterRun,
    *,
    vocabulary: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
    force: bool = False,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Name ``run``'s clusters automatically and store names and evidence.

    Names a user gave (``rename_cluster``) are kept unless ``force``. Returns one dict per
    cluster: label, name, terms, tags, and whether the name was kept.
    """
    rng = np.random.default_rng(seed)
    metas: dict[int, list[Any]] = {}
    for cluster in run.clusters:
        if cluster.label == NOISE:
            continue
        members = run.item_ids[run.labels == cluster.label]
        if len(members) > _NAMING_SAMPLE:
            members = rng.choice(members, _NAMING_SAMPLE, replace=False)
        items = engine.store.get_items(engine.collection, [int(i) for i in members])
        metas[cluster.label] = [dict(i.meta) for i in items]
    embed = _text_embed(engine, run.dim)
    named = name_clusters(
        run, metas, embed=embed,
        vocabulary=DEFAULT_VOCABULARY if vocabulary is None else vocabulary,
        templates=NAMING_TEMPLATES if templates is None else templates,
    )  # fmt: skip
    notes = RunNotes(engine.store.engine)
    current = {c.label: c for c in run.clusters}
    out = []
    for n in named:
        kept = current[n.label].meta.get("named_by") == "user" and not force
        evidence = {"terms": n.terms, "tags": n.tags, "zero_shot": embed is not None}
        if kept:
            notes.set_cluster(run.id, n.label, meta=evidence)
        else:
            notes.set_cluster(run.id, n.label, name=n.name, meta={**evidence, "named_by": "auto"})
        name = current[n.label].name if kept else n.name
        out.append({"label": n.label, "name": name, "kept": kept, **evidence})
    _redraw(engine, run.id)
    return out


def rename_cluster(engine: Engine, run: ClusterRun, label: int, name: str) -> dict[str, Any]:
    """Give cluster ``label`` of ``run`` a user's name (kept by later automatic naming)."""
    name = " ".join(name.split())
    if not name:
        raise ConfigError("a cluster name cannot be empty")
    if len(name) > 200:
        raise ConfigError(f"a cluster name is at most 200 characters, got {len(name)}")
    if label == NOISE or not RunNotes(engine.store.engine).set_cluster(
        run.id, label, name=name, meta={"named_by": "user"}
    ):
        real = sorted(c.label for c in run.clusters if c.label != NOISE)
        raise ClusterParameterError("label", label, f"run {run.id} has clusters {real}")
    return {"run": run.id, "label": label, "name": name, "map": _redraw(engine, run.id)}


def _redraw(engine: Engine, run_id: int) -> str | None:
    """Re-render a run's map with its current names (the HTML path), if it has a map."""
    from clipatlas.analysis.clustering.runs import collection_runs
    from clipatlas.analysis.run_map import redraw_run_map  # plotly/matplotlib load only here

    run = collection_runs(engine).get(run_id)
    drawn = redraw_run_map(engine.store, engine.collection, run, engine.media_root)
    return None if drawn is None else drawn.html


def _items_brief(
    engine: Engine, ids: Sequence[int], scores: dict[int, float]
) -> list[dict[str, Any]]:
    items = {i.id: i for i in engine.store.get_items(engine.collection, list(ids))}
    out = []
    for item_id in ids:
        item = items.get(int(item_id))
        if item is None:
            continue
        entry: dict[str, Any] = {
            "id": item.id,
            "uri": item.uri,
            "cosine": round(scores.get(item.id, float("nan")), 6),
            "media_path": item.media_path,
        }
        entry.update({k: item.meta[k] for k in ("model_id", "model_name") if k in item.meta})
        out.append(entry)
    return out


def recommend(
    engine: Engine,
    run: ClusterRun,
    prompt: str,
    *,
    top: int = 3,
    items: int = 5,
    templates: Sequence[str] = RECOMMEND_TEMPLATES,
) -> dict[str, Any]:
    """The clusters of ``run`` that best fit a text prompt, with their best items and models.

    The prompt goes through ``templates`` (averaged, re-normalised) and the CLIP text tower;
    clusters rank by cosine to their centroid. Within each cluster the members nearest the
    prompt are the items to look at; with CivitAI provenance, their models are the LoRAs to
    try (ranked by their best image's cosine to the prompt).
    """
    if not prompt.strip():
        raise ConfigError("the prompt is empty")
    if top < 1 or items < 1:
        raise ConfigError("top and items must be at least 1")
    query = embed_phrases(engine.embedder().embed_texts, [prompt.strip()], templates)[0]
    model = RunModel(run)
    cos = model.centroids @ query
    order = np.argsort(-cos, kind="stable")[:top]
    clusters = []
    for rank, row in enumerate(order, start=1):
        label = int(model.labels[row])
        ids, vectors = member_vectors(engine, run.item_ids[run.labels == label])
        member_cos = vectors @ query if len(ids) else np.zeros(0, np.float32)
        best = np.argsort(-member_cos, kind="stable")
        scores = {int(ids[i]): float(member_cos[i]) for i in best[: max(items * 20, 100)]}
        shown = _items_brief(engine, [int(ids[i]) for i in best[:items]], scores)
        clusters.append(
            {
                "rank": rank,
                "label": label,
                "name": model.names[row],
                "cosine": round(float(cos[row]), 6),
                "size": model.sizes[row],
                "items": shown,
                "models": _models(engine, list(scores), scores, items),
            }
        )
    return {"run": run.id, "prompt": prompt, "templates": list(templates), "clusters": clusters}


def _models(
    engine: Engine, ids: list[int], scores: dict[int, float], limit: int
) -> list[dict[str, Any]]:
    """Distinct CivitAI models among ``ids`` (best image first); empty without provenance."""
    best: dict[Any, dict[str, Any]] = {}
    for item in engine.store.get_items(engine.collection, ids):
        for link in links_of(item.meta):  # a picture shared by several models: each of them
            model_id = link.get("model_id")
            entry = best.setdefault(
                model_id,
                {"model_id": model_id, "model_name": link.get("model_name"), "images": 0,
                 "cosine": -1.0, "best_item": item.id},
            )  # fmt: skip
            entry["images"] += 1
            if scores.get(item.id, -1.0) > entry["cosine"]:
                entry["cosine"], entry["best_item"] = round(scores[item.id], 6), item.id
    return sorted(best.values(), key=lambda m: -m["cosine"])[:limit]


@dataclass(frozen=True)
class ArrivalReport:
    """Items placed on a run after it was fitted, and whether to re-cluster."""

    run_id: int
    assigned: int  # newly assigned by this call
    total: int  # assigned to the run so far
    unknown: int  # among ``total``
    per_cluster: dict[int, int]  # label -> assigned so far (-1 = unknown)
    run_items: int
    advise_recluster: bool
    advice: str

    @property
    def unknown_share(self) -> float:
        return self.unknown / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "assigned": self.assigned,
            "total": self.total,
            "unknown": self.unknown,
            "unknown_share": round(self.unknown_share, 6),
            "per_cluster": {str(k): v for k, v in sorted(self.per_cluster.items())},
            "run_items": self.run_items,
            "advise_recluster": self.advise_recluster,
            "advice": self.advice,
        }


def assign_new(
    engine: Engine,
    run: ClusterRun,
    *,
    unknown_share: float = ADVISE_UNKNOWN_SHARE,
    growth: float = ADVISE_GROWTH,
) -> ArrivalReport:
    """Assign every searchable item that is neither in ``run`` nor assigned yet to its nearest
    cluster ("unknown" beyond the cluster's calibrated radius), without refitting."""
    index = engine.index()
    if index.matrix.shape[1] != run.dim:
        raise ClipatlasError(
            f"run {run.id} has {run.dim}-d centroids but the collection's vectors are "
            f"{index.matrix.shape[1]}-d"
        )
    notes = RunNotes(engine.store.engine)
    known = np.union1d(run.item_ids, notes.assigned_ids(run.id))
    rows = np.flatnonzero(~np.isin(index.ids, known))
    if len(rows):
        vectors = normalise(np.asarray(index.matrix[rows], dtype=np.float32))
        notes.save_assignments(run.id, RunModel(run).assign(index.ids[rows], vectors))
    counts = notes.counts(run.id)
    total = sum(counts.values())
    unknown = counts.get(NOISE, 0)
    share = unknown / total if total else 0.0
    reasons = []
    if total >= ADVISE_MIN_ARRIVALS and share > unknown_share:
        reasons.append(
            f"{share:.0%} of the {counted(total, 'item')} that arrived after run {run.id} fit "
            f"none of its clusters (advice above {unknown_share:.0%})"
        )
    if total >= ADVISE_MIN_ARRIVALS and total > growth * len(run.item_ids):
        reasons.append(
            f"{counted(total, 'item')} arrived after run {run.id}, more than {growth:.0%} of the "
            f"{len(run.item_ids)} it was fitted on"
        )
    advice = (
        "re-clustering advised: " + "; ".join(reasons)
        if reasons
        else f"run {run.id} still fits: {total} later items, {share:.0%} unknown"
    )
    return ArrivalReport(
        run.id, len(rows), total, unknown, counts, len(run.item_ids), bool(reasons), advice
    )
