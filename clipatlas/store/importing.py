"""Bring your own embeddings: vectors computed elsewhere, attached to items already ingested.

Accepted inputs:

* ``vectors.npy`` (N x dim) plus an ids file: ``.txt`` (one id per line), ``.json`` (a list) or
  ``.npy`` (N ids);
* a Parquet file with an id column and a vector column (list or fixed-size list of floats).

Ids are matched against the items' source keys (``match="key"``, e.g. ``cats/01.jpg`` for a
folder ingest) or their numeric item ids (``match="id"``). Every problem is collected and
reported together: NaN/inf or zero vectors, duplicate ids, unknown ids. A wrong dimension is
refused first, on its own (:class:`~clipatlas.errors.EmbeddingDimensionError`): against the
collection's vectors once it has some, else against the text tower of the embedder the vectors
are said to come from (``embedder_id``, default the collection's model) when it can be loaded
here. Nothing is written unless every check passes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from clipatlas.errors import EmbeddingDimensionError, EmbeddingImportError

__all__ = ["VectorFile", "check_dimension", "read_vector_file", "validate_vectors"]

Match = Literal["key", "id"]


@dataclass(frozen=True)
class VectorFile:
    ids: list[str]
    matrix: np.ndarray  # float32 (N, dim)


def _read_ids(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return [str(x) for x in np.load(path, allow_pickle=False).tolist()]
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise EmbeddingImportError(str(path), ["ids JSON must be a list"])
            return [str(x) for x in data]
        return [
            line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise EmbeddingImportError(str(path), [f"cannot read ids: {exc}"]) from exc


def read_vector_file(
    path: Path,
    ids_path: Path | None = None,
    *,
    id_column: str = "id",
    vector_column: str = "vector",
) -> VectorFile:
    path = Path(path)
    if not path.exists():
        raise EmbeddingImportError(str(path), ["file does not exist"])
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if ids_path is None:
            raise EmbeddingImportError(str(path), ["an ids file is required with .npy vectors"])
        try:
            matrix = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise EmbeddingImportError(str(path), [f"not a readable .npy file: {exc}"]) from exc
        ids = _read_ids(Path(ids_path))
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, columns=[id_column, vector_column])
        except Exception as exc:  # pyarrow raises many types for bad files and missing columns
            raise EmbeddingImportError(str(path), [f"cannot read Parquet: {exc}"]) from exc
        ids = [str(x) for x in table.column(id_column).to_pylist()]
        rows = table.column(vector_column).to_pylist()
        lengths = {len(r) if r is not None else -1 for r in rows}
        if len(lengths) > 1 or -1 in lengths:
            raise EmbeddingImportError(
                str(path), [f"vectors have differing lengths {sorted(lengths)}"]
            )
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    else:
        raise EmbeddingImportError(
            str(path), [f"unsupported file type {suffix!r} (use .npy or .parquet)"]
        )
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
        raise EmbeddingImportError(
            str(path), [f"expected a 2-D numeric array, got shape {matrix.shape}"]
        )
    if len(ids) != len(matrix):
        raise EmbeddingImportError(str(path), [f"{len(ids)} ids for {len(matrix)} vectors"])
    return VectorFile(ids, matrix.astype(np.float32))


def check_dimension(
    source: str, vf: VectorFile, expected: int | None, embedder: str, *, bound: bool
) -> None:
    """Refuse vectors whose dimension is not ``expected`` (the collection's, when ``bound``,
    else its embedder's text tower; None: unknown, the vectors set it)."""
    if expected is not None and vf.matrix.shape[1] != expected:
        raise EmbeddingDimensionError(source, int(vf.matrix.shape[1]), expected, embedder, bound)


def validate_vectors(source: str, vf: VectorFile, known: dict[str, int], match: Match) -> list[int]:
    """Check everything else at once; return the item id of every row or raise with all
    problems (the dimension is checked first, by :func:`check_dimension`)."""
    problems: list[str] = []
    bad = ~np.isfinite(vf.matrix).all(axis=1)
    if bad.any():
        first = vf.ids[int(np.argmax(bad))]
        problems.append(f"{int(bad.sum())} vectors contain NaN or inf (first id {first!r})")
    zero = np.linalg.norm(np.nan_to_num(vf.matrix), axis=1) == 0
    if zero.any():
        problems.append(
            f"{int(zero.sum())} zero vectors (first id {vf.ids[int(np.argmax(zero))]!r})"
        )
    dupes = [k for k, n in Counter(vf.ids).items() if n > 1]
    if dupes:
        problems.append(f"{len(dupes)} duplicate ids (e.g. {dupes[0]!r})")
    unknown = [k for k in vf.ids if k not in known]
    if unknown:
        what = "source keys" if match == "key" else "item ids"
        problems.append(f"{len(unknown)} ids are not stored {what} (e.g. {unknown[0]!r})")
    if problems:
        raise EmbeddingImportError(source, problems)
    return [known[k] for k in vf.ids]


def known_ids(
    ids: Sequence[str], match: Match, lookup_keys: dict[str, int], stored: set[int]
) -> dict[str, int]:
    if match == "key":
        return lookup_keys
    return {k: int(k) for k in ids if k.lstrip("-").isdigit() and int(k) in stored}
