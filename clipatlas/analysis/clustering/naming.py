"""Human-readable cluster names: zero-shot style words plus the members' distinctive tags.

Two kinds of evidence, both saved with the cluster (``meta["terms"]``, ``meta["tags"]``):

* **Style words.** Every word of a vocabulary (:data:`DEFAULT_VOCABULARY`: art and photo
  styles, media, subjects, moods) is put into prompt templates (:data:`NAMING_TEMPLATES`) and
  embedded with the collection's CLIP text tower; the template vectors are averaged and
  re-normalised. A word describes a cluster when its cosine to the cluster's centroid is high
  *compared with the other clusters* (contrast = cosine minus the mean cosine over all
  clusters): raw CLIP text-image cosines favour the same few generic words everywhere.
* **Tags.** When the members carry tags in their provenance (``meta["tags"]``, e.g. CivitAI
  model tags), each cluster is a document and each tag scores class-based TF-IDF (as in
  BERTopic): the share of the cluster's models (or items, without model ids) carrying it,
  times ``log(1 + A / f)`` (A: mean models per cluster, f: the tag's count everywhere). A tag
  needs :data:`MIN_TAG_SHARE` of the cluster to count, and a tag that reaches that share in
  every cluster, nowhere twice as often as elsewhere (``style`` on every style LoRA), tells the
  clusters apart not at all: it never names one.

The name is the best word (the next best when another cluster already took it), followed by
up to two tags: ``"watercolor painting · flowers, botanical"``. A name set by a user
(``named_by == "user"``) is never replaced by automatic naming.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipatlas.analysis.clustering.kmeans import normalise
from clipatlas.store.model_links import links_of
from clipatlas.store.runs import NOISE, ClusterRun

__all__ = [
    "DEFAULT_VOCABULARY",
    "MIN_TAG_SHARE",
    "NAMING_TEMPLATES",
    "ClusterName",
    "distinctive_tags",
    "embed_phrases",
    "everywhere_tags",
    "name_clusters",
    "style_terms",
]

TextEmbed = Callable[[Sequence[str]], np.ndarray]

NAMING_TEMPLATES: tuple[str, ...] = (
    "{}",
    "an image in the style of {}",
    "a {} picture",
    "artwork in {} style",
)

# Styles, media, techniques, subjects and moods people use to describe generated art and photos.
DEFAULT_VOCABULARY: tuple[str, ...] = (
    # illustration and painting
    "anime", "manga", "cartoon", "comic book", "chibi", "watercolor painting", "oil painting",
    "acrylic painting", "gouache", "ink wash painting", "ukiyo-e", "impressionism",
    "expressionism", "art nouveau", "art deco", "baroque painting", "renaissance painting",
    "pop art", "surrealism", "cubism", "minimalism", "abstract art", "concept art",
    "digital painting", "fantasy illustration", "children's book illustration",
    "storybook illustration", "line art", "pencil sketch", "charcoal drawing", "pastel drawing",
    "pixel art", "vector art", "flat design", "low poly", "isometric art", "papercut art",
    "stained glass", "mosaic", "graffiti", "tattoo design", "woodblock print", "linocut",
    # 3d and rendering
    "3d render", "clay render", "claymation", "voxel art", "octane render",
    "unreal engine render", "toy figure", "plush toy", "isometric diorama",
    # photography
    "photorealistic", "portrait photography", "fashion photography", "street photography",
    "landscape photography", "macro photography", "food photography", "product photography",
    "architectural photography", "black and white photography", "film photography",
    "polaroid photo", "long exposure photography", "aerial photography", "studio lighting",
    "cinematic still", "analog film grain",
    # genres and moods
    "cyberpunk", "steampunk", "science fiction", "fantasy", "dark fantasy", "horror",
    "gothic", "vaporwave", "synthwave", "retro 80s", "vintage", "noir", "kawaii",
    "dreamy pastel", "neon lights", "moody dark", "bright colorful", "monochrome",
    # subjects
    "portrait", "character design", "landscape", "cityscape", "interior design",
    "architecture", "animals", "flowers", "food", "cars", "mecha robot", "armor", "weapons",
    "clothing and fashion", "logo", "icon", "text and typography", "screenshot", "meme",
)  # fmt: skip

MIN_TAG_SHARE = 0.2  # a tag must be carried by this share of a cluster's models/items
_MAX_TERMS = 5
_MAX_TAGS = 5


@dataclass(frozen=True)
class ClusterName:
    """An automatic name and the evidence behind it."""

    label: int
    name: str
    terms: list[dict[str, Any]]  # {"term", "cosine", "contrast"}, best first
    tags: list[dict[str, Any]]  # {"tag", "share", "score"}, best first


def embed_phrases(embed: TextEmbed, phrases: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """One L2-normalised vector per phrase: the mean of its templated prompts' vectors."""
    if not templates:
        templates = ("{}",)
    prompts = [t.format(p) for p in phrases for t in templates]
    vectors = np.asarray(embed(prompts), dtype=np.float32)
    per = vectors.reshape(len(phrases), len(templates), -1).mean(axis=1)
    return normalise(per)


def style_terms(
    centroids: np.ndarray, term_vectors: np.ndarray, vocabulary: Sequence[str]
) -> list[list[dict[str, Any]]]:
    """Per centroid row: the vocabulary words ranked by contrast (cosine minus its mean over
    all centroids; the raw cosine with a single cluster)."""
    cosine = centroids @ term_vectors.T
    contrast = cosine - cosine.mean(axis=0, keepdims=True) if len(centroids) > 1 else cosine
    out: list[list[dict[str, Any]]] = []
    for row in range(len(centroids)):
        order = np.argsort(-contrast[row], kind="stable")[:_MAX_TERMS]
        out.append(
            [
                {
                    "term": vocabulary[int(j)],
                    "cosine": round(float(cosine[row, j]), 4),
                    "contrast": round(float(contrast[row, j]), 4),
                }
                for j in order
            ]
        )
    return out


def _tag_doc(metas: Iterable[Mapping[str, Any]]) -> tuple[Counter[str], int]:
    """Tag counts of one cluster, each model counted once (items without model id: each; a
    picture shared by several models counts for each of them)."""
    seen: dict[Any, set[str]] = {}

    def add(key: Any, tags: Any) -> None:
        if isinstance(tags, list):
            seen.setdefault(key, set()).update(
                t.strip().lower() for t in tags if isinstance(t, str) and t.strip()
            )

    for n, meta in enumerate(metas):
        owner = meta.get("model_id")
        add(("model", owner) if owner is not None else ("item", n), meta.get("tags"))
        for link in links_of(meta):  # the other models a shared picture belongs to
            if link.get("model_id") != owner:
                add(("model", link.get("model_id")), link.get("tags"))
    counts: Counter[str] = Counter()
    for tags in seen.values():
        counts.update(tags)
    return counts, len(seen)


def everywhere_tags(docs: Mapping[int, tuple[Counter[str], int]]) -> set[str]:
    """Tags with no discriminating power: carried by at least :data:`MIN_TAG_SHARE` of the
    models of every cluster that has tags, and nowhere twice as often as anywhere else (e.g.
    "style" on every CivitAI style LoRA). Empty with fewer than two such clusters, where
    nothing is compared."""
    shares = [
        {tag: count / owners for tag, count in counts.items()}
        for counts, owners in docs.values()
        if owners
    ]
    if len(shares) < 2:
        return set()
    common = set.intersection(*({t for t, v in s.items() if v >= MIN_TAG_SHARE} for s in shares))
    return {t for t in common if min(s[t] for s in shares) * 2 > max(s[t] for s in shares)}


def distinctive_tags(
    member_metas: Mapping[int, Sequence[Mapping[str, Any]]],
) -> dict[int, list[dict[str, Any]]]:
    """Class-based TF-IDF tags per cluster label (each cluster one document): a tag's share of
    the cluster's models times ``log(1 + A / f)``, A the mean number of models per cluster and
    f the tag's count over all clusters, so tags everywhere sink; a tag about equally common in
    every cluster (:func:`everywhere_tags`) names none. Empty lists without tags."""
    docs = {label: _tag_doc(metas) for label, metas in member_metas.items()}
    overall: Counter[str] = Counter()
    for counts, _ in docs.values():
        overall.update(counts)
    average = sum(owners for _, owners in docs.values()) / max(len(docs), 1)
    common = everywhere_tags(docs)
    out: dict[int, list[dict[str, Any]]] = {}
    for label, (counts, owners) in docs.items():
        scored: list[dict[str, Any]] = []
        for tag, count in counts.items():
            share = count / owners
            if share < MIN_TAG_SHARE or tag in common:
                continue
            idf = math.log(1.0 + average / overall[tag])
            scored.append({"tag": tag, "share": round(share, 4), "score": round(share * idf, 4)})
        scored.sort(key=lambda t: (-t["score"], t["tag"]))
        out[label] = scored[:_MAX_TAGS]
    return out


def _compose(
    terms: list[dict[str, Any]], tags: list[dict[str, Any]], taken: set[str]
) -> tuple[str, str | None]:
    """(name, the style word it uses)."""
    word = next((t["term"] for t in terms if t["term"] not in taken), None)
    shown = word
    if word is None and terms:  # every word taken: the best two together
        shown = f"{terms[0]['term']} / {terms[1]['term']}" if len(terms) > 1 else terms[0]["term"]
    tag_text = ", ".join(t["tag"] for t in tags[:2])
    if shown and tag_text:
        return f"{shown} · {tag_text}", word
    return shown or tag_text, word


def name_clusters(
    run: ClusterRun,
    member_metas: Mapping[int, Sequence[Mapping[str, Any]]],
    *,
    embed: TextEmbed | None,
    vocabulary: Sequence[str] = DEFAULT_VOCABULARY,
    templates: Sequence[str] = NAMING_TEMPLATES,
) -> list[ClusterName]:
    """Names for every real cluster of ``run`` (noise excluded), in label order.

    ``embed`` is the collection's CLIP text tower (None when it cannot be loaded, e.g. for
    imported vectors: tags only). ``member_metas`` maps a label to its members' provenance.
    Falls back to ``"cluster <label>"`` when there is no evidence at all.
    """
    labels, centroids = run.centroids()
    terms: list[list[dict[str, Any]]] = [[] for _ in labels]
    vocabulary = [w.strip() for w in vocabulary if w.strip()]
    if embed is not None and vocabulary and len(labels):
        term_vectors = embed_phrases(embed, vocabulary, templates)
        terms = style_terms(centroids, term_vectors, vocabulary)
    tags = distinctive_tags({int(lb): member_metas.get(int(lb), ()) for lb in labels})
    # the clusters whose best word is clearest choose first, so a contested word goes to the
    # cluster it describes best
    order = sorted(
        range(len(labels)), key=lambda i: -(terms[i][0]["contrast"] if terms[i] else 0.0)
    )
    names: dict[int, ClusterName] = {}
    taken: set[str] = set()
    for i in order:
        label = int(labels[i])
        if label == NOISE:
            continue
        text, word = _compose(terms[i], tags.get(label, []), taken)
        if word is not None:
            taken.add(word)
        text = text or f"cluster {label}"
        names[label] = ClusterName(label, text, terms[i], tags.get(label, []))
    return [names[int(lb)] for lb in labels if int(lb) in names]
