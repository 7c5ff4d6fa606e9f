"""Precomputed embedding sets on disk, read in chunks: the layout clip-retrieval writes.

``clip-retrieval inference`` writes, per output shard ``i``::

    img_emb/img_emb_{i}.npy        (n_i, d) float image embeddings
    text_emb/text_emb_{i}.npy      (n_i, d') float text (caption) embeddings
    metadata/metadata_{i}.parquet  n_i rows: caption, url or image_path, ... (same order)

:func:`clip_retrieval_chunks` reads such a folder shard by shard, ``chunk_size`` rows at a
time (the ``.npy`` files memory-mapped, the parquet read in row batches), so a set of any
size is added with flat memory::

    for img, txt, payloads in clip_retrieval_chunks("embeddings_folder"):
        asif.add_anchor_embeddings(img, txt, payloads=payloads)

Parquet needs ``pyarrow``; without metadata files the payloads are empty dicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant.errors import InvalidInputError, check_int

__all__ = ["clip_retrieval_chunks", "clip_retrieval_count"]


def _shards(folder: Path) -> list[tuple[Path, Path, Path | None]]:
    """``(image .npy, text .npy, metadata .parquet or None)`` per shard, by shard number."""
    found = {}
    for f in (folder / "img_emb").glob("img_emb_*.npy"):
        m = re.fullmatch(r"img_emb_(\d+)\.npy", f.name)
        if m:
            found[int(m.group(1))] = f
    if not found:
        raise InvalidInputError(
            f"{folder} is not a clip-retrieval embeddings folder: no img_emb/img_emb_<i>.npy "
            "(it needs img_emb/, text_emb/ and optionally metadata/)."
        )
    out = []
    for i in sorted(found):
        txt = folder / "text_emb" / f"text_emb_{i}.npy"
        if not txt.exists():
            raise InvalidInputError(
                f"{found[i]} has no text embeddings beside it: {txt} is missing."
            )
        meta = folder / "metadata" / f"metadata_{i}.parquet"
        out.append((found[i], txt, meta if meta.exists() else None))
    return out


def clip_retrieval_count(folder: str | Path) -> int:
    """The number of pairs in a clip-retrieval folder (from the ``.npy`` headers)."""
    return sum(len(np.load(img, mmap_mode="r")) for img, _, _ in _shards(Path(folder)))


def clip_retrieval_chunks(
    folder: str | Path, *, chunk_size: int = 65536
) -> Iterator[tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]]:
    """``(image rows, text rows, payloads)`` of a clip-retrieval folder, ``chunk_size`` at a time.

    Each payload is its metadata row (``caption``, ``url``, ...; missing values left out).

    Raises:
        InvalidInputError: If the folder is not in that layout, or a shard's files disagree
            on its row count.
    """
    chunk_size = check_int("chunk_size", "clip_retrieval_chunks", chunk_size, minimum=1)
    for img_f, txt_f, meta_f in _shards(Path(folder)):
        img, txt = np.load(img_f, mmap_mode="r"), np.load(txt_f, mmap_mode="r")
        batches: Iterator[list[dict[str, Any]]] | None = None
        if meta_f is not None:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(meta_f)
            rows = pf.metadata.num_rows
            batches = (b.to_pylist() for b in pf.iter_batches(batch_size=chunk_size))
        else:
            rows = len(img)
        if not len(img) == len(txt) == rows:
            raise InvalidInputError(
                f"The shard {img_f.name} disagrees on its size: {len(img)} image rows, "
                f"{len(txt)} text rows, {rows} metadata rows."
            )
        for s in range(0, len(img), chunk_size):
            e = min(len(img), s + chunk_size)
            meta = next(batches) if batches is not None else [{}] * (e - s)
            payloads = [{k: v for k, v in r.items() if v is not None} for r in meta]
            yield (
                np.asarray(img[s:e], dtype=np.float32),
                np.asarray(txt[s:e], dtype=np.float32),
                payloads,
            )
