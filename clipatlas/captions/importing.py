"""Import a captioned dataset: its pictures go through the normal ingest (decode, store,
CLIP vector), its captions become reference captions of the stored items, embedded with the
text model, and the items get a seeded train/test split.

Per-picture problems never stop an import: a caption line naming a missing picture, a
picture that fails to decode, ... are listed in :class:`CaptionImportReport` with a reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from clipatlas.atomic import write_atomic
from clipatlas.captions.readers import CaptionRecord, dataset_label, read_captions
from clipatlas.captions.split import assign_split
from clipatlas.progress import ProgressCallback
from clipatlas.sources.base import Candidate

if TYPE_CHECKING:
    from clipatlas.captions.context import CaptionContext

__all__ = ["SOURCE", "CaptionImportReport", "CaptionedSource", "import_captions"]

SOURCE = "captions"


@dataclass
class CaptionImportReport:
    dataset: str
    records: int = 0
    items: int = 0  # pictures that carry captions now
    captions: int = 0
    embedded: int = 0
    ingest: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    split: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class CaptionedSource:
    """The pictures of a captioned dataset as ingest candidates (key ``<dataset>/<image>``)."""

    name = SOURCE

    def __init__(self, label: str, records: list[CaptionRecord]) -> None:
        self.label, self.records = label, records

    def key(self, record: CaptionRecord) -> str:
        return f"{self.label}/{record.key}"

    def iter_candidates(self) -> Iterator[Candidate]:
        for r in self.records:
            if r.path is None:
                continue
            st = r.path.stat()
            yield Candidate(
                source=SOURCE,
                key=self.key(r),
                uri=str(r.path),
                path=r.path,
                size=st.st_size,
                mtime=st.st_mtime,
                meta={"dataset": self.label, "image": r.key},
            )


def _write(fh: BinaryIO, *, data: bytes) -> None:
    fh.write(data)


def _materialise(records: list[CaptionRecord], folder: Path) -> None:
    """Write inline pictures (Hugging Face datasets) to files once, so ingest reads files."""
    for r in records:
        if r.data is None:
            continue
        target = folder / r.key.replace("/", "_")
        if not target.exists() or target.stat().st_size != len(r.data):
            write_atomic(target, partial(_write, data=r.data))
        r.path, r.data = target, None


def import_captions(
    captions: CaptionContext,
    path: str | os.PathLike[str],
    *,
    images: str | os.PathLike[str] | None = None,
    image_column: str | None = None,
    caption_column: str | None = None,
    hf_split: str | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    embed_captions: bool = True,
    progress: ProgressCallback | None = None,
) -> CaptionImportReport:
    """Import ``path`` into the collection; a rerun changes nothing already there."""
    engine, cstore = captions.engine, captions.store
    source_path = Path(path).expanduser()
    records = read_captions(
        source_path,
        images=Path(images).expanduser() if images else None,
        image_column=image_column,
        caption_column=caption_column,
        split=hf_split,
    )
    label = dataset_label(source_path)
    report = CaptionImportReport(dataset=label, records=len(records))
    _materialise(records, engine.directory / "imports" / label)
    present: list[CaptionRecord] = []
    for r in records:
        if r.path is None or not r.path.is_file():
            where = str(r.path) if r.path is not None else "no picture in the row"
            report.errors.append({"image": r.key, "reason": "missing_image", "detail": where})
        elif not r.captions:
            report.errors.append({"image": r.key, "reason": "no_caption", "detail": str(r.path)})
        else:
            present.append(r)
    source = CaptionedSource(label, present)
    report.ingest = engine.ingest(source, progress=progress).as_dict()
    states = cstore.key_states(SOURCE, [source.key(r) for r in present])
    texts: dict[int, list[str]] = {}
    for r in present:
        state = states.get(source.key(r))
        if state is None:
            report.errors.append({"image": r.key, "reason": "not_ingested", "detail": ""})
            continue
        item_id = state.item_id if state.status == "ok" else state.duplicate_of
        if item_id is None:
            report.errors.append(
                {"image": r.key, "reason": state.reason or "rejected", "detail": state.detail or ""}
            )
            continue
        group = texts.setdefault(item_id, [])
        group.extend(t for t in r.captions if t not in group)
    report.captions = cstore.replace_references(label, texts)
    report.items = len(texts)
    if embed_captions:
        report.embedded = captions.embed_pending(progress)
    report.split = assign_split(engine, cstore, test_fraction=test_fraction, seed=seed)
    return report
