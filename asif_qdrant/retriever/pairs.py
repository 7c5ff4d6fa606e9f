"""A few anchor pairs in a file: what ``anchors audit --apply`` deleted, to put back later.

:func:`save_anchor_pairs` writes the pairs' stored embeddings (exact float32 bits) and
payloads to one ``.npz`` file (no pickles); :func:`read_anchor_pairs` reads it back, and
``ASIF.add_anchor_embeddings`` (``asif-qdrant anchors restore FILE``) adds them again, under
new ids (ids are never reused). A whole model moves with :mod:`asif_qdrant.transfer`.

Example:
    >>> import tempfile, numpy as np
    >>> from asif_qdrant.store import EdgeStore
    >>> from asif_qdrant.retriever.edits import add_anchor_embeddings
    >>> rng = np.random.default_rng(0)
    >>> with EdgeStore(tempfile.mkdtemp()) as store:
    ...     m = ModelState(store, Layout("demo"), show_progress_bar=False)
    ...     m.open("precomputed/image", "precomputed/text", k=2, p=None)
    ...     ids = add_anchor_embeddings(m, rng.random((3, 8)), rng.random((3, 4)))
    ...     f = save_anchor_pairs(m, ids[1:], tempfile.mkdtemp() + "/pairs.npz")
    ...     pairs = read_anchor_pairs(f)
    ...     pairs.ids, pairs.image.shape, pairs.text.shape
    ([1, 2], (2, 8), (2, 4))
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant.errors import InvalidInputError, check_int
from asif_qdrant.retriever.fingerprint import Fingerprint
from asif_qdrant.retriever.layout import Layout
from asif_qdrant.retriever.state import ModelState

__all__ = ["PAIRS_FORMAT", "AnchorPairs", "read_anchor_pairs", "save_anchor_pairs"]

#: The ``format`` field of an anchor-pairs file.
PAIRS_FORMAT = "asif-qdrant-anchor-pairs"


@dataclass(frozen=True)
class AnchorPairs:
    """Anchor pairs read back from :func:`save_anchor_pairs`'s file.

    Attributes:
        ids: The ids they had in their model.
        image: ``(n, d_image)`` float32 unit image embeddings, as stored.
        text: ``(n, d_text)`` float32 unit caption embeddings, as stored.
        payloads: Their payloads (caption, image reference, ...).
        model: The name of the model they came from.
        image_encoder: The image encoder that made ``image``.
        text_encoder: The text encoder that made ``text``.
    """

    ids: list[int]
    image: np.ndarray
    text: np.ndarray
    payloads: list[dict[str, Any]]
    model: str
    image_encoder: str
    text_encoder: str

    def check_fits(self, fp: Fingerprint, name: str) -> None:
        """Raise :class:`FingerprintMismatchError` unless the model ``fp`` has these encoders."""
        for modality, encoder, dim in (
            ("image", self.image_encoder, self.image.shape[1]),
            ("text", self.text_encoder, self.text.shape[1]),
        ):
            fp.check_encoder(modality, encoder, dim, store=name)  # type: ignore[arg-type]


def save_anchor_pairs(state: ModelState, ids: Sequence[int], path: str | os.PathLike[str]) -> Path:
    """Write anchor pairs of an open model (both embeddings and the payload) to one file.

    The file is a numpy ``.npz`` (no pickles): ``ids``, ``image``, ``text`` (float32, the
    stored unit vectors, exact bits) and ``meta`` (JSON: format, model, encoders, payloads).
    :func:`read_anchor_pairs` reads it back; ``asif-qdrant anchors restore FILE`` adds the
    pairs again.

    Args:
        state: The open model (``ASIF.state``).
        ids: Anchor ids of the model (every one must exist).
        path: The file to write (``.npz`` is appended by numpy when missing).

    Returns:
        The file written.

    Raises:
        InvalidInputError: If an id is not an anchor of the model.
    """
    ids = [check_int("ids", "save_anchor_pairs", i, minimum=0) for i in ids]
    layout: Layout = state.layout
    vectors = {}
    for modality in ("image", "text"):
        coll, vn = layout.anchors(modality)  # type: ignore[arg-type]
        recs = state.store.retrieve(coll, ids, with_vectors=[vn])
        if [int(r.id) for r in recs] != ids:
            missing = sorted(set(ids) - {int(r.id) for r in recs})
            raise InvalidInputError(
                f"Cannot save anchors {missing[:20]}: they are not anchors of the model "
                f"'{state.name}'."
            )
        vectors[modality] = np.stack([r.dense[vn] for r in recs]).astype(np.float32)
        if modality == "text":
            payloads = [dict(r.payload) for r in recs]
    fp: Fingerprint = state.fingerprint
    meta = {
        "format": PAIRS_FORMAT,
        "version": 1,
        "model": state.name,
        "image_encoder": fp.image_encoder,
        "text_encoder": fp.text_encoder,
        "payloads": payloads,
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        np.savez(
            fh,
            ids=np.asarray(ids, np.int64),
            image=vectors["image"],
            text=vectors["text"],
            meta=np.asarray(json.dumps(meta, ensure_ascii=False)),
        )
    return out


def read_anchor_pairs(path: str | os.PathLike[str]) -> AnchorPairs:
    """Read a file of :func:`save_anchor_pairs`.

    Raises:
        InvalidInputError: If the file is missing or is not such a file.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != PAIRS_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}")
            return AnchorPairs(
                ids=[int(i) for i in data["ids"]],
                image=np.asarray(data["image"], np.float32),
                text=np.asarray(data["text"], np.float32),
                payloads=[dict(p) for p in meta["payloads"]],
                model=str(meta["model"]),
                image_encoder=str(meta["image_encoder"]),
                text_encoder=str(meta["text_encoder"]),
            )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(
            f"{path} is not a file of saved anchor pairs (as `anchors audit --apply` writes): {e}."
        ) from e
