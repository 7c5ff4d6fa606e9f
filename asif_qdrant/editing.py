"""Editing an ASIF model: add or delete anchor pairs, and keep every catalog vector exact.

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
  score means a deleted anchor carries weight in that item.

An item is **affected** by an add when a new anchor's similarity is at least its boundary
minus ``EDIT_TOLERANCE`` (1e-5, the float32 rounding of the engine's dot products; ties are
therefore affected), and by a delete when its stored vector gives a deleted anchor a
positive weight. Exactly the affected items are re-computed from their stored embedding.
Ties at the k-th place are broken by the lower anchor id (:meth:`ASIF.relative_from_embeddings`),
so a re-computed item equals a fresh re-index whatever order the engine returns ties in.

Example:
    >>> import numpy as np
    >>> kth_vectors(np.array([[0.6, 0.8]]), np.array([0.5])).tolist()
    [[0.6000000238418579, 0.800000011920929, -0.5]]
    >>> probe_vectors(np.array([[1.0, 0.0]])).tolist()
    [[1.0, 0.0, 1.0]]
    >>> # a . e - t = 0.6 - 0.5 > 0: the new anchor reaches this item's boundary.
    >>> float(probe_vectors(np.array([[1.0, 0.0]]))[0] @ kth_vectors(
    ...     np.array([[0.6, 0.8]]), np.array([0.5]))[0]) > 0
    True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm.auto import tqdm

from asif_qdrant.store.base import PointId, Record, Store
from asif_qdrant.types import SparseVector

if TYPE_CHECKING:
    from asif_qdrant.model import ASIF

__all__ = [
    "EDIT_TOLERANCE",
    "CatalogEdit",
    "EditReport",
    "affected_by_add",
    "affected_by_delete",
    "compact_collection",
    "kth_name",
    "kth_vectors",
    "probe_vectors",
]

logger = logging.getLogger(__name__)

#: Items whose boundary a new anchor misses by less than this are re-computed too: the
#: engine's float32 dot products cannot tell such a near-tie from a win.
EDIT_TOLERANCE = 1e-5
SPARSE = "asif"
_CHUNK = 256

Operation = Literal["add", "delete", "reindex"]


def kth_name(modality: str) -> str:
    """Name of the dense vector ``[e, -boundary]`` of a catalog item of ``modality``.

    Example:
        >>> kth_name("image")
        'image_kth'
    """
    return f"{modality}_kth"


def kth_vectors(unit: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """``[e, -t]`` rows: an item's unit embedding with its boundary ``t`` appended, negated."""
    unit = np.asarray(unit, dtype=np.float32)
    return np.concatenate([unit, -np.asarray(boundary, np.float32).reshape(-1, 1)], axis=1)


def probe_vectors(unit_anchors: np.ndarray) -> np.ndarray:
    """``[a, 1]`` rows: a new anchor's query against the ``*_kth`` vectors (score ``a.e - t``)."""
    unit_anchors = np.asarray(unit_anchors, dtype=np.float32)
    return np.concatenate([unit_anchors, np.ones((len(unit_anchors), 1), np.float32)], axis=1)


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


# -- finding the affected items ---------------------------------------------------------------
def affected_by_add(
    store: Store,
    collection: str,
    modality: str,
    unit_anchors: np.ndarray,
    *,
    tolerance: float = EDIT_TOLERANCE,
) -> set[PointId]:
    """Items of ``modality`` whose boundary one of the new anchors reaches (one dense query each).

    Args:
        store: The store.
        collection: The catalog (with ``*_kth`` vectors).
        modality: ``"image"`` or ``"text"``: the new anchors' embeddings are of this modality.
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


def affected_by_delete(store: Store, collection: str, deleted: Iterable[int]) -> set[PointId]:
    """Items whose stored sparse vector gives a deleted anchor a positive weight (one query)."""
    ids = sorted({int(i) for i in deleted})
    if not ids:
        return set()
    n = store.count(collection)
    if n == 0:
        return set()
    probe = SparseVector(indices=np.asarray(ids), values=np.ones(len(ids), np.float32))
    (hits,) = store.query_sparse(collection, SPARSE, [probe], n, with_payload=False)
    return {h.id for h in hits if h.score > 0}


# -- re-computing ------------------------------------------------------------------------------
def has_kth(store: Store, collection: str) -> bool:
    """Whether the catalog has the ``*_kth`` vectors that incremental edits need."""
    spec = store.collection_spec(collection)
    return kth_name("image") in spec.dense and kth_name("text") in spec.dense


def recompute(
    asif: ASIF,
    collection: str,
    records: Sequence[Record],
    *,
    with_kth: bool,
) -> None:
    """Re-compute the sparse vector (and boundary) of records holding their own embedding."""
    for modality in ("image", "text"):
        group = [r for r in records if modality in r.dense]
        if not group:
            continue
        unit = np.stack([np.asarray(r.dense[modality], np.float32) for r in group])
        vecs, boundary = asif._relative(unit, modality)  # type: ignore[arg-type]
        kth = kth_vectors(unit, boundary) if with_kth else None
        asif.store.update_vectors(
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


def recompute_ids(
    asif: ASIF, collection: str, ids: Sequence[PointId], *, with_kth: bool, progress: bool
) -> None:
    """Re-compute the given items from their stored embeddings."""
    ids = list(ids)
    with tqdm(
        total=len(ids), desc=f"Re-computing {collection}", unit="item", disable=not progress
    ) as bar:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            recs = asif.store.retrieve(collection, chunk, with_vectors=["image", "text"])
            recompute(asif, collection, recs, with_kth=with_kth)
            bar.update(len(chunk))


def recompute_all(asif: ASIF, collection: str, *, with_kth: bool, progress: bool) -> list[PointId]:
    """Re-compute every item of a catalog (a full re-index from the stored embeddings)."""
    done: list[PointId] = []
    total = asif.store.count(collection)
    with tqdm(
        total=total, desc=f"Re-indexing {collection}", unit="item", disable=not progress
    ) as bar:
        page: list[Record] = []
        for rec in asif.store.scroll(collection, with_vectors=["image", "text"]):
            page.append(rec)
            if len(page) == _CHUNK:
                recompute(asif, collection, page, with_kth=with_kth)
                done.extend(r.id for r in page)
                bar.update(len(page))
                page = []
        if page:
            recompute(asif, collection, page, with_kth=with_kth)
            done.extend(r.id for r in page)
            bar.update(len(page))
    return done


def update_catalogs(
    asif: ASIF,
    *,
    previous_version: int,
    new_units: dict[str, np.ndarray] | None = None,
    deleted: Sequence[int] | None = None,
    progress: bool = False,
) -> tuple[CatalogEdit, ...]:
    """Bring every catalog of the model up to date after an anchor edit.

    A catalog indexed under ``previous_version`` with ``*_kth`` vectors is updated
    incrementally; any other one (an older layout, or stale after an interrupted edit) is
    re-computed in full. Each catalog is marked with the new anchor version once done.
    """
    fp = asif.fingerprint
    edits = []
    for collection, info in sorted(fp.catalogs.items()):
        if not asif.store.has_collection(collection):
            continue
        t0 = time.perf_counter()
        total = asif.store.count(collection)
        with_kth = has_kth(asif.store, collection)
        incremental = with_kth and info.get("anchor_version") == previous_version
        if incremental:
            affected: set[PointId] = set()
            for modality, unit in (new_units or {}).items():
                affected |= affected_by_add(asif.store, collection, modality, unit)
            if deleted:
                affected |= affected_by_delete(asif.store, collection, deleted)
            ids = sorted(affected, key=lambda x: (isinstance(x, str), x))
            recompute_ids(asif, collection, ids, with_kth=with_kth, progress=progress)
        else:
            logger.info(
                "Catalog '%s' is re-computed in full (%s).",
                collection,
                "no *_kth vectors: indexed by an older version"
                if not with_kth
                else "it was not at the previous anchor version",
            )
            ids = recompute_all(asif, collection, with_kth=with_kth, progress=progress)
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


def compact_collection(store: Store, name: str) -> None:
    """Rewrite a collection from its live points, so that deleted data leaves the disk too.

    Qdrant keeps deleted points in its write-ahead log and segment files until it vacuums
    them. Rewriting the collection (through a temporary copy, so an interruption loses
    nothing) leaves only the live points on disk.
    """
    if not store.has_collection(name):
        return
    spec = store.collection_spec(name)
    records = list(store.scroll(name, with_vectors=True))
    tmp = f"{name}.compacting"[:255]
    store.delete_collection(tmp)
    store.create_collection(tmp, spec)
    store.upsert(tmp, records)
    store.delete_collection(name)
    store.create_collection(name, spec)
    store.upsert(name, records)
    store.delete_collection(tmp)
