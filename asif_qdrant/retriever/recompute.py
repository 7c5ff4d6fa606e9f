"""Keeping every catalog vector exact after an anchor edit: find the affected items, recompute.

Adding or deleting anchors changes the top-k of some catalog items. After any sequence of
edits every stored catalog vector equals what a full re-index would give, while an edit only
re-computes the items it affects, found with one Qdrant query each (never a scan):

* Every catalog item keeps its own unit embedding ``e`` (dense vector ``image`` or ``text``)
  and a second dense vector ``image_kth`` / ``text_kth`` = ``[e, -t]``, where ``t`` is the
  item's **boundary**: the similarity of its k-th kept anchor, clamped at 0 (and 0 while
  the model has fewer than k anchors). An anchor below the boundary cannot change the
  item's vector: either it does not enter the top-k, or it enters with weight 0.
* **Add.** Each new anchor ``a`` (unit) queries ``*_kth`` with ``[a, 1]``: the score is
  ``a . e - t``, so ``score > -EDIT_TOLERANCE`` finds exactly the items whose boundary it
  reaches (engine-side ``score_threshold``, exact search).
* **Delete.** The deleted ids, all with weight 1, query the sparse vectors: any positive
  score means a deleted anchor carries weight in that item. A model whose items store
  pruned vectors (``catalog_nnz``) cannot ask its sparse vectors (a deleted anchor may be in
  an item's top-k but not among its stored largest weights): each deleted anchor's unit
  embedding probes ``*_kth`` as an added one does (an anchor in the top-k with a positive
  weight is at or above the boundary), read before the anchors are deleted.

An item is **affected** by an add when a new anchor's similarity is at least its boundary
minus ``EDIT_TOLERANCE`` (1e-5, the float32 rounding of the engine's dot products; ties are
therefore affected), and by a delete when its stored vector gives a deleted anchor a
positive weight. Exactly the affected items are re-computed from their stored embedding.
Ties at the k-th place are broken by the lower anchor id
(:func:`asif_qdrant.relative.relative_from_topk`), so a re-computed item equals a fresh
re-index whatever order the engine returns ties in.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.retriever.layout import kth_vectors, probe_vectors
    >>> # a . e - t = 0.6 - 0.5 > 0: the new anchor reaches this item's boundary.
    >>> float(probe_vectors(np.array([[1.0, 0.0]]))[0] @ kth_vectors(
    ...     np.array([[0.6, 0.8]]), np.array([0.5]))[0]) > 0
    True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from asif_qdrant.progress import progress_bar
from asif_qdrant.retriever import writes
from asif_qdrant.retriever.anchors import relative
from asif_qdrant.retriever.layout import SPARSE, kth_name, kth_vectors, probe_vectors
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.store.base import PointId, Record, Store
from asif_qdrant.types import SparseVector

__all__ = [
    "EDIT_TOLERANCE",
    "CatalogEdit",
    "EditReport",
    "affected_by_add",
    "affected_by_delete",
    "has_kth",
    "prune",
    "recompute_all",
    "recompute_ids",
    "sorted_ids",
    "update_catalogs",
]

logger = logging.getLogger(__name__)

#: Items whose boundary a new anchor misses by less than this are re-computed too: the
#: engine's float32 dot products cannot tell such a near-tie from a win.
EDIT_TOLERANCE = 1e-5
CHUNK = 256

Operation = Literal["add", "delete", "reindex"]


@dataclass(frozen=True)
class CatalogEdit:
    """What an edit did to one catalog collection.

    Attributes:
        collection: The catalog.
        items_touched: Items re-computed (the affected ones).
        items_total: Items in the catalog.
        seconds: Wall time spent on this catalog (finding and re-computing).
        mode: ``"incremental"`` (only the affected items) or ``"full"`` (every item: a
            catalog indexed before this layout, or one left stale by an interrupted edit).
        ids: The re-computed item ids.
    """

    collection: str
    items_touched: int
    items_total: int
    seconds: float
    mode: Literal["incremental", "full"] = "incremental"
    ids: tuple[PointId, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form (without the ids)."""
        return {
            "collection": self.collection,
            "items_touched": self.items_touched,
            "items_total": self.items_total,
            "seconds": round(self.seconds, 4),
            "mode": self.mode,
        }


@dataclass(frozen=True)
class EditReport:
    """What one anchor edit did (``ASIF.last_edit``).

    Attributes:
        operation: ``"add"``, ``"delete"`` or ``"reindex"``.
        pairs: Anchor pairs added or deleted.
        anchor_count: Anchor pairs after the edit.
        anchor_version: The anchor-set version after the edit.
        seconds: Wall time of the whole edit (anchors and catalogs).
        catalogs: One entry per catalog collection.

    Example:
        >>> r = EditReport("add", 2, 10, 3, 0.25, (CatalogEdit("c", 4, 40, 0.2),))
        >>> r.summary()
        'add 2 anchor pairs: re-computed 4 of 40 catalog items in 0.25 s (version 3)'
    """

    operation: Operation
    pairs: int
    anchor_count: int
    anchor_version: int
    seconds: float
    catalogs: tuple[CatalogEdit, ...] = ()

    @property
    def items_touched(self) -> int:
        """Catalog items re-computed, over all catalogs."""
        return sum(c.items_touched for c in self.catalogs)

    @property
    def items_total(self) -> int:
        """Catalog items, over all catalogs."""
        return sum(c.items_total for c in self.catalogs)

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-serialisable)."""
        return {
            "operation": self.operation,
            "pairs": self.pairs,
            "anchor_count": self.anchor_count,
            "anchor_version": self.anchor_version,
            "items_touched": self.items_touched,
            "items_total": self.items_total,
            "seconds": round(self.seconds, 4),
            "catalogs": [c.as_dict() for c in self.catalogs],
        }

    def summary(self) -> str:
        """One line for people."""
        what = "re-index" if self.operation == "reindex" else f"{self.operation}"
        pairs = "" if self.operation == "reindex" else f" {self.pairs} anchor pairs"
        return (
            f"{what}{pairs}: re-computed {self.items_touched} of {self.items_total} catalog "
            f"items in {self.seconds:.2f} s (version {self.anchor_version})"
        )


#: Weights within this relative distance of the pruning cut count as tied (float32 rounding
#: of equal anchors' similarities, raised to p, moves a weight by a few 1e-6 relative).
PRUNE_TIE = 1e-5


def prune(vectors: Sequence[SparseVector], nnz: int | None) -> list[SparseVector]:
    """Each vector's ``nnz`` largest weights (ties, within PRUNE_TIE: the lower id), as stored.

    A catalog item stores its pruned vector (``ASIF(catalog_nnz=...)``): its score against a
    query is the part of the full dot product that its largest weights carry.

    Example:
        >>> v = SparseVector(np.array([4, 2, 9]), np.array([0.6, 0.6, 0.2]))
        >>> p = prune([v], 2)[0]
        >>> p.indices.tolist(), [round(float(x), 1) for x in p.values]
        ([2, 4], [0.6, 0.6])
    """
    if nnz is None:
        return list(vectors)
    out = []
    for v in vectors:
        if len(v) <= nnz:
            out.append(v)
            continue
        order = np.lexsort((v.indices, -v.values))
        cut = float(v.values[order[nnz - 1]])
        near = np.abs(v.values - cut) <= PRUNE_TIE * cut  # float32 near-ties of the cut
        if near.sum() > 1:  # equal anchors' weights differ in the last bits: lower id wins
            above = np.flatnonzero((v.values > cut) & ~near)
            group = np.flatnonzero(near)
            group = group[np.argsort(v.indices[group], kind="stable")]
            order = np.concatenate([above, group])
        top = order[:nnz]
        out.append(SparseVector(v.indices[top], v.values[top]))
    return out


# -- finding the affected items ---------------------------------------------------------------
def affected_by_add(
    store: Store,
    collection: str,
    modality: str,
    unit_anchors: np.ndarray,
    *,
    tolerance: float = EDIT_TOLERANCE,
) -> set[PointId]:
    """Items whose boundary one of the new anchors reaches (one dense query each).

    Args:
        store: The store.
        collection: The catalog (with ``*_kth`` vectors).
        modality: ``"image"`` or ``"text"`` (or ``"caption"``): the kth vector searched is
            ``kth_name(modality)``.
        unit_anchors: ``(n, d)`` unit embeddings of the new anchors.
        tolerance: Near-ties within this are affected too.

    Returns:
        The ids of the affected items.
    """
    if len(unit_anchors) == 0:
        return set()
    res = store.query_dense_above(
        collection, kth_name(modality), probe_vectors(unit_anchors), -float(tolerance)
    )
    return {pid for hits in res for pid, _ in hits}


def affected_by_delete(
    store: Store, collection: str, deleted: Iterable[int], vector: str = SPARSE
) -> set[PointId]:
    """Items whose sparse ``vector`` gives a deleted anchor a positive weight (one query)."""
    ids = sorted({int(i) for i in deleted})
    if not ids:
        return set()
    n = store.count(collection)
    if n == 0:
        return set()
    probe = SparseVector(indices=np.asarray(ids), values=np.ones(len(ids), np.float32))
    (hits,) = store.query_sparse(collection, vector, [probe], n, with_payload=False)
    return {h.id for h in hits if h.score > 0}


def sorted_ids(ids: Iterable[PointId]) -> list[PointId]:
    """Point ids in a stable order (ints first, then UUID strings)."""
    return sorted(ids, key=lambda x: (isinstance(x, str), x))


# -- re-computing ------------------------------------------------------------------------------
def has_kth(store: Store, collection: str) -> bool:
    """Whether the catalog has the ``*_kth`` vectors that incremental edits need."""
    spec = store.collection_spec(collection)
    return kth_name("image") in spec.dense and kth_name("text") in spec.dense


def _recompute(m: ModelState, collection: str, records: Sequence[Record], with_kth: bool) -> None:
    """Re-compute the sparse vector (and boundary) of records holding their own embedding."""
    for modality in ("image", "text"):
        group = [r for r in records if modality in r.dense]
        if not group:
            continue
        unit = np.stack([np.asarray(r.dense[modality], np.float32) for r in group])
        vecs, boundary = relative(m, unit, modality)
        vecs = prune(vecs, m.fingerprint.catalog_nnz)
        kth = kth_vectors(unit, boundary) if with_kth else None
        writes.update_vectors(
            m.store,
            collection,
            [
                Record(
                    r.id,
                    dense={kth_name(modality): kth[j]} if kth is not None else {},
                    sparse={SPARSE: v},
                )
                for j, (r, v) in enumerate(zip(group, vecs, strict=True))
            ],
        )


def pages(
    store: Store, collection: str, vectors: list[str], *, size: int = CHUNK
) -> Iterator[list[Record]]:
    """Every point of a collection with some vectors, a page at a time."""
    page: list[Record] = []
    for rec in store.scroll(collection, with_vectors=vectors, batch_size=size):
        page.append(rec)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def recompute_ids(
    m: ModelState, collection: str, ids: Sequence[PointId], *, with_kth: bool, progress: bool
) -> None:
    """Re-compute the given items from their stored embeddings."""
    ids = list(ids)
    with progress_bar(
        total=len(ids), desc=f"Re-computing {collection}", unit="item", show=progress
    ) as bar:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            recs = m.store.retrieve(collection, chunk, with_vectors=["image", "text"])
            _recompute(m, collection, recs, with_kth)
            bar.update(len(chunk))


def recompute_all(
    m: ModelState, collection: str, *, with_kth: bool, progress: bool
) -> list[PointId]:
    """Re-compute every item of a catalog (a full re-index from the stored embeddings)."""
    done: list[PointId] = []
    total = m.store.count(collection)
    with progress_bar(
        total=total, desc=f"Re-indexing {collection}", unit="item", show=progress
    ) as bar:
        for page in pages(m.store, collection, ["image", "text"]):
            _recompute(m, collection, page, with_kth)
            done.extend(r.id for r in page)
            bar.update(len(page))
    return done


def update_catalogs(
    m: ModelState,
    *,
    previous_version: int,
    new_units: dict[str, np.ndarray] | None = None,
    deleted: Sequence[int] | None = None,
    progress: bool = False,
    deleted_units: dict[str, np.ndarray] | None = None,
) -> tuple[CatalogEdit, ...]:
    """Bring every catalog of the model up to date after an anchor edit.

    A catalog indexed under ``previous_version`` with ``*_kth`` vectors is updated
    incrementally; any other one (an older layout, or stale after an interrupted edit) is
    re-computed in full. Each catalog is marked with the new anchor version once done.
    With pruned item vectors (``catalog_nnz``) a delete needs ``deleted_units`` (the
    deleted anchors' unit embeddings by modality); without them every catalog is
    re-computed in full.
    """
    fp = m.fingerprint
    pruned = fp.catalog_nnz is not None
    blind = pruned and bool(deleted) and deleted_units is None
    edits = []
    for collection, info in sorted(fp.catalogs.items()):
        if not m.store.has_collection(collection):
            continue
        t0 = time.perf_counter()
        total = m.store.count(collection)
        with_kth = has_kth(m.store, collection)
        incremental = with_kth and info.get("anchor_version") == previous_version and not blind
        if incremental:
            affected: set[PointId] = set()
            probes = [
                *(new_units or {}).items(),
                *((deleted_units or {}).items() if pruned else []),
            ]
            for modality, unit in probes:
                affected |= affected_by_add(m.store, collection, modality, unit)
            if deleted and not pruned:
                affected |= affected_by_delete(m.store, collection, deleted)
            ids = sorted_ids(affected)
            recompute_ids(m, collection, ids, with_kth=with_kth, progress=progress)
        else:
            logger.info(
                "Catalog '%s' is re-computed in full (%s).",
                collection,
                "no *_kth vectors: indexed by an older version"
                if not with_kth
                else "pruned item vectors and no embeddings of the deleted anchors"
                if blind
                else "it was not at the previous anchor version",
            )
            ids = recompute_all(m, collection, with_kth=with_kth, progress=progress)
        info["anchor_version"] = fp.anchor_version
        edits.append(
            CatalogEdit(
                collection,
                len(ids),
                total,
                time.perf_counter() - t0,
                "incremental" if incremental else "full",
                tuple(ids),
            )
        )
    return tuple(edits)
