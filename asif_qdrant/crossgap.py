"""Beyond plain ASIF on the same anchors: CSA vectors, hybrid search and crossing the gap.

This module holds the Qdrant-side helpers of :class:`~asif_qdrant.model.ASIF` for

* **CSA** (:mod:`asif_qdrant.csa`): a catalog of a model built with ``csa_dim`` stores each
  item's canonical vector ``transform(e)`` (dense ``csa``, Dot); a query is
  ``transform(q) * rho``, so the engine's dot product is the weighted CSA similarity. CSA is
  fitted on the anchors read back from Qdrant and refitted after every anchor edit, which
  rewrites every ``csa`` vector from the items' stored embeddings;
* **hybrid** search: one Qdrant query with two prefetches (sparse ``asif`` and dense
  ``csa``) fused by reciprocal rank fusion (:meth:`~asif_qdrant.store.Store.query_fusion`);
* **crossing the modality gap** (after Mistretta et al., ICLR 2025) for intra-modal search:

  - ``target="caption"``: image items indexed with a caption also store the caption's
    relative vector (sparse ``asif_caption``, with its embedding ``caption`` and boundary
    ``caption_kth`` so that anchor edits keep it exact); an image query's relative vector is
    compared with the items' caption vectors;
  - ``query_via="invert"``: a query is moved into the other modality through its anchors:
    the weighted mean (weights = its relative vector) of its top anchors' embeddings of the
    other modality, L2-normalised, gives a relative vector of the other modality.

Example:
    >>> import numpy as np
    >>> check_search_options("ASIF.search", "hybrid", "native", "item")
    ('hybrid', 'native', 'item')
    >>> inverted_embeddings(np.array([[0.6, 0.8]]), np.array([[[1.0, 0.0], [0.0, 1.0]]]))
    array([[0.6, 0.8]], dtype=float32)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm.auto import tqdm

from asif_qdrant.errors import InvalidParameterError
from asif_qdrant.relative import l2_normalize
from asif_qdrant.store.base import CollectionSpec, PointId, Record
from asif_qdrant.types import METHODS, QUERY_VIA, TARGETS, Method, QueryVia, SparseVector, Target

if TYPE_CHECKING:
    from asif_qdrant.model import ASIF

__all__ = [
    "CAPTION_KTH",
    "CAPTION_SPARSE",
    "CAPTION_VECTOR",
    "CSA_VECTOR",
    "METHODS",
    "QUERY_VIA",
    "TARGETS",
    "Method",
    "QueryVia",
    "Target",
    "check_search_options",
    "inverted_embeddings",
]


CSA_VECTOR = "csa"
CAPTION_VECTOR = "caption"
CAPTION_KTH = "caption_kth"
CAPTION_SPARSE = "asif_caption"
_CHUNK = 1024


def _one_of(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be one of "
            f"{', '.join(repr(a) for a in allowed)}. Got {value!r:.100} instead."
        )
    return str(value)


def check_search_options(
    owner: str, method: Any, query_via: Any, target: Any
) -> tuple[Method, QueryVia, Target]:
    """Validate ``method`` / ``query_via`` / ``target`` and the combinations allowed.

    Crossing the gap works on ASIF relative vectors: ``query_via="invert"`` and
    ``target="caption"`` need ``method="asif"``.

    Example:
        >>> try:
        ...     check_search_options("ASIF.search", "csa", "invert", "item")
        ... except InvalidParameterError as e:
        ...     print(str(e)[:72])
        ASIF.search: query_via='invert' and target='caption' work on ASIF relati
    """
    m = _one_of(owner, "method", method, METHODS)
    v = _one_of(owner, "query_via", query_via, QUERY_VIA)
    t = _one_of(owner, "target", target, TARGETS)
    if m != "asif" and (v != "native" or t != "item"):
        raise InvalidParameterError(
            f"{owner}: query_via='invert' and target='caption' work on ASIF relative vectors "
            f"only: use them with method='asif'. Got method={m!r}, query_via={v!r}, "
            f"target={t!r}."
        )
    return m, v, t  # type: ignore[return-value]


def inverted_embeddings(weights: np.ndarray, other_side: np.ndarray) -> np.ndarray:
    """Weighted means of anchor embeddings of the other modality, L2-normalised.

    Args:
        weights: ``(m, k)`` relative-vector weights of ``m`` queries.
        other_side: ``(m, k, d)``: for each query, its ``k`` anchors' embeddings of the other
            modality (zero rows for padding).

    Returns:
        ``(m, d)`` ``float32`` unit rows (zero where every weight is 0).
    """
    w = np.asarray(weights, dtype=np.float64)
    e = np.asarray(other_side, dtype=np.float64)
    return l2_normalize(np.einsum("mk,mkd->md", w, e))


def invert_queries(
    asif: ASIF, vectors: Sequence[SparseVector], modality: Literal["image", "text"]
) -> tuple[np.ndarray, Literal["image", "text"]]:
    """Move queries of ``modality`` into the other one through their anchors.

    Each query's relative vector names its top anchors and their weights; the anchors'
    embeddings of the other modality are read from Qdrant by id and averaged with those
    weights, then L2-normalised.

    Returns:
        ``(units, other_modality)``: the inverted unit embeddings.
    """
    other: Literal["image", "text"] = "text" if modality == "image" else "image"
    coll, vn = asif._anchor_collection(other)
    ids = sorted({int(i) for v in vectors for i in v.indices.tolist()})
    emb = {
        int(r.id): np.asarray(r.dense[vn], np.float32)
        for r in asif.store.retrieve(coll, ids, with_vectors=[vn])
    }
    dim = asif._dim(other) or 0
    units = np.zeros((len(vectors), dim), np.float32)
    for row, v in enumerate(vectors):
        if len(v) == 0:
            continue
        side = np.stack([emb.get(int(i), np.zeros(dim, np.float32)) for i in v.indices])
        units[row] = inverted_embeddings(v.values[None, :], side[None, :, :])[0]
    return units, other


# -- catalog layout -----------------------------------------------------------------------------
def extra_spec(asif: ASIF) -> tuple[dict[str, int], tuple[str, ...]]:
    """The dense and sparse vectors a new catalog gets beyond the ASIF layout."""
    fp = asif.fingerprint
    assert fp.text_dim is not None  # anchors exist when a catalog is created
    dense = {CAPTION_VECTOR: fp.text_dim, CAPTION_KTH: fp.text_dim + 1}
    if fp.csa_dim is not None:
        dense[CSA_VECTOR] = int(fp.csa_dim)
    return dense, (CAPTION_SPARSE,)


def migrate_catalog(asif: ASIF, collection: str) -> bool:
    """Give an existing catalog the vectors it lacks (``csa``, the caption vectors).

    Qdrant cannot add a named vector to a collection, so the catalog is rewritten through a
    temporary copy (an interruption loses nothing: the copy ``<name>.migrating`` keeps every
    point), then its ``csa`` vectors are filled in. Returns whether anything was done.
    """
    store = asif.store
    spec = store.collection_spec(collection)
    dense, sparse = extra_spec(asif)
    missing_dense = {k: v for k, v in dense.items() if k not in spec.dense}
    missing_sparse = tuple(s for s in sparse if s not in spec.sparse)
    if not missing_dense and not missing_sparse:
        return False
    new = CollectionSpec(
        dense={**spec.dense, **missing_dense}, sparse=tuple(spec.sparse) + missing_sparse
    )
    records = list(store.scroll(collection, with_vectors=True))
    tmp = f"{collection}.migrating"[:255]
    store.delete_collection(tmp)
    store.create_collection(tmp, spec)
    store.upsert(tmp, records)
    store.delete_collection(collection)
    store.create_collection(collection, new)
    store.upsert(collection, records)
    store.delete_collection(tmp)
    if CSA_VECTOR in missing_dense:
        refresh_csa(asif, collection)
    return True


def has_vector(asif: ASIF, collection: str, name: str) -> bool:
    """Whether a catalog has the named (dense or sparse) vector."""
    spec = asif.store.collection_spec(collection)
    return name in spec.dense or name in spec.sparse


# -- keeping the extra vectors exact after anchor edits ----------------------------------------
def refresh_csa(asif: ASIF, collection: str, *, progress: bool = False) -> int:
    """Rewrite every ``csa`` vector of a catalog from the items' stored embeddings.

    Returns:
        How many items were rewritten.
    """
    store = asif.store
    done = 0
    total = store.count(collection)
    with tqdm(
        total=total, desc=f"CSA vectors of {collection}", unit="item", disable=not progress
    ) as bar:
        page: list[Record] = []
        for rec in store.scroll(collection, with_vectors=["image", "text"], batch_size=_CHUNK):
            page.append(rec)
            if len(page) == _CHUNK:
                done += _write_csa(asif, collection, page)
                bar.update(len(page))
                page = []
        if page:
            done += _write_csa(asif, collection, page)
            bar.update(len(page))
    return done


def _write_csa(asif: ASIF, collection: str, records: Sequence[Record]) -> int:
    out: list[Record] = []
    for modality in ("image", "text"):
        group = [r for r in records if modality in r.dense]
        if not group:
            continue
        unit = np.stack([np.asarray(r.dense[modality], np.float32) for r in group])
        vecs = asif._csa_vectors(unit, modality)  # type: ignore[arg-type]
        out += [Record(r.id, dense={CSA_VECTOR: vecs[j]}) for j, r in enumerate(group)]
    asif.store.update_vectors(collection, out)
    return len(out)


def caption_records(asif: ASIF, ids: Sequence[PointId], units: np.ndarray) -> list[Record]:
    """The caption vectors (sparse, embedding, boundary) of items with caption ``units``."""
    from asif_qdrant.editing import kth_vectors

    if len(ids) == 0:
        return []
    vecs, boundary = asif._relative(units, "text")
    kth = kth_vectors(units, boundary)
    return [
        Record(
            pid,
            dense={CAPTION_VECTOR: units[j], CAPTION_KTH: kth[j]},
            sparse={CAPTION_SPARSE: vecs[j]},
        )
        for j, pid in enumerate(ids)
    ]


def update_captions(
    asif: ASIF,
    collection: str,
    *,
    incremental: bool,
    new_text_units: np.ndarray | None = None,
    deleted: Sequence[int] | None = None,
) -> int:
    """Re-compute the caption vectors an anchor edit affects (all of them if not incremental).

    The same rule as :mod:`asif_qdrant.editing`: a new text anchor affects the captions whose
    boundary it reaches (a dense query on ``caption_kth``), a deleted one the captions whose
    vector gives it a positive weight (one sparse query). Returns how many were re-computed.
    """
    from asif_qdrant.editing import affected_by_add

    store = asif.store
    if incremental:
        affected: set[PointId] = set()
        if new_text_units is not None and len(new_text_units):
            affected |= affected_by_add(store, collection, CAPTION_VECTOR, new_text_units)
        if deleted:
            probe = SparseVector(
                indices=np.asarray(sorted(deleted)), values=np.ones(len(deleted), np.float32)
            )
            n = store.count(collection)
            if n:
                (hits,) = store.query_sparse(
                    collection, CAPTION_SPARSE, [probe], n, with_payload=False
                )
                affected |= {h.id for h in hits if h.score > 0}
        ids = sorted(affected, key=lambda x: (isinstance(x, str), x))
        recs = [
            r
            for start in range(0, len(ids), _CHUNK)
            for r in store.retrieve(
                collection, ids[start : start + _CHUNK], with_vectors=[CAPTION_VECTOR]
            )
        ]
    else:
        recs = [
            r
            for r in store.scroll(collection, with_vectors=[CAPTION_VECTOR], batch_size=_CHUNK)
            if CAPTION_VECTOR in r.dense
        ]
    for start in range(0, len(recs), _CHUNK):
        chunk = recs[start : start + _CHUNK]
        units = np.stack([np.asarray(r.dense[CAPTION_VECTOR], np.float32) for r in chunk])
        store.update_vectors(collection, caption_records(asif, [r.id for r in chunk], units))
    return len(recs)


def after_edit(
    asif: ASIF,
    *,
    previous_version: int,
    new_units: dict[str, np.ndarray] | None,
    deleted: Sequence[int] | None,
    progress: bool = False,
) -> dict[str, float]:
    """Bring every catalog's CSA and caption vectors up to date after an anchor edit.

    Runs before :func:`asif_qdrant.editing.update_catalogs` (while each catalog still records
    the anchor version it was indexed with). Returns the seconds spent per catalog.
    """
    fp = asif.fingerprint
    seconds: dict[str, float] = {}
    for collection, info in sorted(fp.catalogs.items()):
        if not asif.store.has_collection(collection):
            continue
        t0 = time.perf_counter()
        spec = asif.store.collection_spec(collection)
        if CSA_VECTOR in spec.dense and fp.csa_dim is not None:
            refresh_csa(asif, collection, progress=progress)
        if CAPTION_SPARSE in spec.sparse and CAPTION_KTH in spec.dense:
            update_captions(
                asif,
                collection,
                incremental=info.get("anchor_version") == previous_version,
                new_text_units=(new_units or {}).get("text"),
                deleted=deleted,
            )
        seconds[collection] = time.perf_counter() - t0
    return seconds
