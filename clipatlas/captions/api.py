"""``Captions``: retrieval-augmented captioning of one collection (``atlas.captions()``).

with Atlas.open("flickr") as atlas:
    atlas.import_captions("~/data/Flickr8k")                 # pictures + references + split
    atlas.caption(model="openai-compatible:qwen2.5vl")       # every picture, resumable
    atlas.search_captions("a dog catching a frisbee", k=5)   # CLIP + caption + keyword
    atlas.caption_eval(model="hf:HuggingFaceTB/SmolVLM-256M-Instruct", n=50)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipatlas.captions.backends.base import CaptionModel, create_caption_model
from clipatlas.captions.batch import CaptionRunReport, caption_items
from clipatlas.captions.evaluate import evaluate_captions
from clipatlas.captions.importing import CaptionImportReport, import_captions
from clipatlas.captions.prompt import PromptTemplate
from clipatlas.captions.search import CaptionHit, search_captions
from clipatlas.captions.split import assign_split
from clipatlas.captions.store import Caption, CaptionStore, ensure_tables
from clipatlas.captions.textvec import embed_pending
from clipatlas.embedders.base import Embedder
from clipatlas.progress import ProgressCallback
from clipatlas.sources.base import Candidate

if TYPE_CHECKING:
    from clipatlas.engine import Engine

__all__ = ["Captions"]

FILES_SOURCE = "caption-files"


class _Files:
    """Single pictures to caption, keyed by their absolute path."""

    name = FILES_SOURCE

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = paths

    def iter_candidates(self) -> Iterator[Candidate]:
        for p in self.paths:
            st = p.stat()
            yield Candidate(FILES_SOURCE, str(p), str(p), p, st.st_size, st.st_mtime)


class Captions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # migration 4 creates the caption tables; a database written while migration 4 was an
        # empty slot (the tables not yet defined) gets them here, once
        ensure_tables(engine.store)
        self._text_model: Embedder | None = None
        self._vectors: tuple[tuple[int, ...], tuple[np.ndarray, ...]] | None = None

    @property
    def store(self) -> CaptionStore:
        return CaptionStore(self.engine.store, self.engine.collection)

    # -- models --------------------------------------------------------------------------------

    @property
    def text_model_id(self) -> str:
        """The caption text model: ``text_model`` when set explicitly (argument, environment),
        else the model the stored caption vectors come from, else the default."""
        settings = self.engine.settings
        if "text_model" not in settings.model_fields_set:
            stored = self.store.vector_models()
            if len(stored) == 1:
                return stored[0]
        return settings.text_model

    def text_model(self) -> Embedder:
        if self._text_model is None:
            settings = self.engine.settings
            self._text_model = self.engine.registry.create_embedder(self.text_model_id, settings)
        return self._text_model

    def backend(self, model: str | CaptionModel | None = None) -> CaptionModel:
        if model is None or isinstance(model, str):
            return create_caption_model(
                model or self.engine.settings.caption_model, self.engine.settings
            )
        return model

    def template(
        self, language: str | None = None, prompt_file: Path | None = None
    ) -> PromptTemplate:
        s = self.engine.settings
        return PromptTemplate.load(
            language or s.caption_language, prompt_file or s.caption_prompt_file
        )

    def _prompt_chars(self, given: int | None) -> int:
        return self.engine.settings.caption_prompt_chars if given is None else given

    def embed_pending(self, progress: ProgressCallback | None = None) -> int:
        return embed_pending(self.store, self.text_model_id, self.text_model, progress)

    def caption_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(caption ids, item ids, matrix) of the text model, cached until captions change."""
        counts = (
            *self.store.vector_state(self.text_model_id),
            self.engine.store.fingerprint(self.engine.collection).version,  # items rejected, ...
        )
        if self._vectors is None or self._vectors[0] != counts:
            self._vectors = (counts, self.store.load_vectors(self.text_model_id))
        c, i, m = self._vectors[1]
        return c, i, m

    def texts_of(self, caption_ids: Sequence[int]) -> dict[int, str]:
        return self.store.texts_of(caption_ids)

    # -- operations ----------------------------------------------------------------------------

    def import_captions(self, path: str | os.PathLike[str], **options: Any) -> CaptionImportReport:
        return import_captions(self, path, **options)

    def split(self, *, test_fraction: float = 0.1, seed: int = 0) -> dict[str, int]:
        return assign_split(
            self.engine, self.store, test_fraction=test_fraction, seed=seed, redo=True
        )

    def caption(
        self,
        item_ids: Sequence[int] | None = None,
        *,
        model: str | CaptionModel | None = None,
        retrieval: bool = True,
        k: int | None = None,
        language: str | None = None,
        prompt_file: Path | None = None,
        prompt_chars: int | None = None,
        redo: bool = False,
        progress: ProgressCallback | None = None,
    ) -> CaptionRunReport:
        """Caption ``item_ids`` (default: all); ``prompt_chars`` is the characters of
        neighbours' caption lines a prompt may carry (``caption_prompt_chars``)."""
        backend = self.backend(model)
        try:
            return caption_items(
                self,
                backend,
                item_ids,
                retrieval=retrieval,
                k=self.engine.settings.caption_neighbours if k is None else k,
                template=self.template(language, prompt_file),
                prompt_chars=self._prompt_chars(prompt_chars),
                redo=redo,
                progress=progress,
            )
        finally:
            if backend is not model:  # built here from a name: ours to close
                _close(backend)

    def caption_files(
        self, paths: Sequence[str | os.PathLike[str]], **options: Any
    ) -> tuple[CaptionRunReport, list[dict[str, Any]]]:
        """Add new pictures (stored, CLIP-embedded) and caption them; returns the run and
        the files that could not be added (with their reason)."""
        files = [Path(p).expanduser().resolve() for p in paths]
        problems: list[dict[str, Any]] = [
            {"file": str(p), "reason": "missing", "detail": "no such file"}
            for p in files
            if not p.is_file()
        ]
        present = [p for p in files if p.is_file()]
        self.engine.ingest(_Files(present), progress=options.get("progress"))
        states = self.store.key_states(FILES_SOURCE, [str(p) for p in present])
        ids: list[int] = []
        for p in present:
            st = states.get(str(p))
            item_id = None if st is None else st.item_id if st.status == "ok" else st.duplicate_of
            if item_id is None:
                problems.append(
                    {
                        "file": str(p),
                        "reason": st.reason if st else "not_ingested",
                        "detail": (st.detail if st else "") or "",
                    }
                )
            else:
                ids.append(item_id)
        return self.caption(ids, **options), problems

    def search(
        self,
        text: str,
        k: int = 10,
        *,
        weights: Mapping[str, float] | None = None,
        fusion: str = "weighted",
        exact_first: bool = True,
    ) -> list[CaptionHit]:
        return search_captions(
            self, text, k, weights=weights, fusion=fusion, exact_first=exact_first
        )

    def evaluate(
        self,
        *,
        model: str | CaptionModel | None = None,
        n: int = 50,
        k: int | None = None,
        seed: int = 0,
        language: str | None = None,
        prompt_file: Path | None = None,
        prompt_chars: int | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        out = (
            Path(out_dir).expanduser()
            if out_dir
            else (self.engine.directory / "caption-evals" / time.strftime("%Y%m%d-%H%M%S"))
        )
        backend = self.backend(model)
        try:
            return evaluate_captions(
                self,
                backend,
                n=n,
                k=self.engine.settings.caption_neighbours if k is None else k,
                seed=seed,
                template=self.template(language, prompt_file),
                out_dir=out,
                prompt_chars=self._prompt_chars(prompt_chars),
                progress=progress,
            )
        finally:
            if backend is not model:
                _close(backend)

    def of_item(self, item_id: int) -> list[Caption]:
        return self.store.captions_of([item_id]).get(item_id, [])


def _close(backend: CaptionModel) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        close()
