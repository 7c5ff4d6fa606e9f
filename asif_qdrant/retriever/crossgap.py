"""Beyond plain ASIF on the same anchors: CSA vectors, caption vectors and crossing the gap.

* **CSA** (:mod:`asif_qdrant.csa`): a catalog of a model built with ``csa_dim`` stores each
  item's canonical vector ``transform(e)`` (dense ``csa``, Dot); a query is
  ``transform(q) * rho``, so the engine's dot product is the weighted CSA similarity. CSA is
  fitted on the anchors read back from Qdrant and refitted after every anchor edit, which
  rewrites every ``csa`` vector from the items' stored embeddings;
* **hybrid** search: one Qdrant query with two prefetches (sparse ``asif`` and dense
  ``csa``) fused by the engine (:mod:`asif_qdrant.retriever.search`);
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
    >>> inverted_embeddings(np.array([[0.6, 0.8]]), np.array([[[1.0, 0.0], [0.0, 1.0]]]))
    array([[0.6, 0.8]], dtype=float32)
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from asif_qdrant.csa import CSA, fit_csa
from asif_qdrant.errors import AnchorSetError, InvalidParameterError
from asif_qdrant.progress import progress_bar
from asif_qdrant.relative import l2_normalize
from asif_qdrant.retriever import journal, writes
from asif_qdrant.retriever.anchors import anchor_embeddings, relative
from asif_qdrant.retriever.layout import (
    CAPTION_KTH,
    CAPTION_SPARSE,
    CAPTION_VECTOR,
    CSA_VECTOR,
    extra_spec,
    kth_vectors,
)
from asif_qdrant.retriever.recompute import (
    affected_by_add,
    affected_by_delete,
    pages,
    sorted_ids,
)
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.store.base import CollectionSpec, PointId, Record
from asif_qdrant.types import Modality, SparseVector

__all__ = [
    "after_edit",
    "caption_records",
    "csa_model",
    "csa_vectors",
    "has_vector",
    "init_csa",
    "invert_queries",
    "inverted_embeddings",
    "migrate_catalog",
    "refresh_csa",
    "refresh_extra_vectors",
    "update_captions",
]

#: Items per page when CSA or caption vectors are rewritten.
CHUNK = 1024


# -- crossing the gap ---------------------------------------------------------------------------
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
    m: ModelState, vectors: Sequence[SparseVector], modality: Modality
) -> tuple[np.ndarray, Modality]:
    """Move queries of ``modality`` into the other one through their anchors.

    Each query's relative vector names its top anchors and their weights; the anchors'
    embeddings of the other modality are read from Qdrant by id and averaged with those
    weights, then L2-normalised.

    Returns:
        ``(units, other_modality)``: the inverted unit embeddings.
    """
    other: Modality = "text" if modality == "image" else "image"
    coll, vn = m.layout.anchors(other)
    ids = sorted({int(i) for v in vectors for i in v.indices.tolist()})
    emb = {
        int(r.id): np.asarray(r.dense[vn], np.float32)
        for r in m.store.retrieve(coll, ids, with_vectors=[vn])
    }
    dim = m.dim(other) or 0
    units = np.zeros((len(vectors), dim), np.float32)
    for row, v in enumerate(vectors):
        if len(v) == 0:
            continue
        side = np.stack([emb.get(int(i), np.zeros(dim, np.float32)) for i in v.indices])
        units[row] = inverted_embeddings(v.values[None, :], side[None, :, :])[0]
    return units, other


# -- CSA -------------------------------------------------------------------------------------
def init_csa(m: ModelState, csa_dim: int | None, csa_ridge: float | None) -> None:
    """Record the CSA settings in the fingerprint (checked against the stored ones)."""
    fp = m.fingerprint
    changed = False
    if csa_dim is not None:
        if fp.csa_dim is None:
            fp.csa_dim, changed = csa_dim, True
        else:
            fp.check_setting("csa_dim", csa_dim, store=m.name)
    if csa_ridge is not None:
        if fp.csa_dim is not None and not changed:
            fp.check_setting("csa_ridge", csa_ridge, store=m.name)
        elif fp.csa_ridge != csa_ridge:
            fp.csa_ridge, changed = csa_ridge, True
    dims = [d for d in (fp.image_dim, fp.text_dim) if d is not None]
    if fp.csa_dim is not None and dims and fp.csa_dim > min(dims):
        raise InvalidParameterError(
            f"The 'csa_dim' parameter of ASIF must be an int in 1..{min(dims)} (the smaller "
            f"encoder dim). Got {fp.csa_dim} instead."
        )
    if changed and m.store.has_collection(m.layout.meta):
        writes.write_fingerprint(m)


def csa_model(m: ModelState, *, required: bool = True) -> CSA | None:
    """The CSA fitted on the stored anchors, cached per anchor version.

    Padded to ``csa_dim`` directions when the anchors allow fewer.
    """
    fp = m.fingerprint
    if fp.csa_dim is None:
        raise InvalidParameterError(
            f"The ASIF model '{m.name}' has no CSA: open it with csa_dim=<int> (for "
            "example 256) to store CSA vectors in its catalogs and use method='csa' or "
            "'hybrid'."
        )
    cached = m.csa_cache
    if cached is None or cached[0] != fp.anchor_version:
        ids_i, img = anchor_embeddings(m, "image")
        ids_t, txt = anchor_embeddings(m, "text")
        model = None
        if len(ids_i) >= 2 and ids_i == ids_t:
            dim = min(fp.csa_dim, img.shape[1], txt.shape[1], len(ids_i))
            model = fit_csa(img, txt, sim_dim=dim, ridge=fp.csa_ridge).padded(fp.csa_dim)
        elif ids_i != ids_t:
            raise AnchorSetError(
                f"The image and text anchor collections of '{m.name}' hold different "
                "ids: the model was interrupted mid-edit; reopen it to repair it."
            )
        cached = m.csa_cache = (fp.anchor_version, model)
    if cached[1] is None and required:
        raise AnchorSetError(
            f"CSA needs at least 2 anchor pairs; the model '{m.name}' has "
            f"{m.fingerprint.anchor_count}."
        )
    return cached[1]  # type: ignore[no-any-return]


def csa_vectors(m: ModelState, unit: np.ndarray, modality: Modality) -> np.ndarray:
    """Stored CSA vectors ``transform(e)`` of unit embeddings (zeros without a fit)."""
    model = csa_model(m, required=False)
    if model is None:
        return np.zeros((len(unit), int(m.fingerprint.csa_dim or 0)), np.float32)
    return model.transform(unit, modality)


# -- catalog vectors beyond ASIF ----------------------------------------------------------------
def has_vector(m: ModelState, collection: str, name: str) -> bool:
    """Whether a catalog has the named (dense or sparse) vector."""
    spec = m.store.collection_spec(collection)
    return name in spec.dense or name in spec.sparse


def migrate_catalog(m: ModelState, collection: str) -> bool:
    """Give an existing catalog the vectors it lacks (``csa``, the caption vectors).

    Qdrant cannot add a named vector to a collection, so the catalog is rewritten through a
    staging copy ``<name>.migrating`` under a write-ahead marker (a kill at any point loses
    nothing: :mod:`asif_qdrant.retriever.journal`), then its ``csa`` vectors are filled in.
    Returns whether anything was done.
    """
    spec = m.store.collection_spec(collection)
    dense, sparse = extra_spec(m.fingerprint)
    missing_dense = {k: v for k, v in dense.items() if k not in spec.dense}
    missing_sparse = tuple(s for s in sparse if s not in spec.sparse)
    if not missing_dense and not missing_sparse:
        return False
    new = CollectionSpec(
        dense={**spec.dense, **missing_dense}, sparse=tuple(spec.sparse) + missing_sparse
    )
    journal.rewrite(m, collection, suffix="migrating", spec=new)
    if CSA_VECTOR in missing_dense:
        refresh_csa(m, collection)
    return True


def refresh_csa(m: ModelState, collection: str, *, progress: bool = False) -> int:
    """Rewrite every ``csa`` vector of a catalog from the items' stored embeddings.

    Returns:
        How many items were rewritten.
    """
    done = 0
    total = m.store.count(collection)
    with progress_bar(
        total=total, desc=f"CSA vectors of {collection}", unit="item", show=progress
    ) as bar:
        for page in pages(m.store, collection, ["image", "text"], size=CHUNK):
            out: list[Record] = []
            for modality in ("image", "text"):
                group = [r for r in page if modality in r.dense]
                if group:
                    unit = np.stack([np.asarray(r.dense[modality], np.float32) for r in group])
                    vecs = csa_vectors(m, unit, modality)
                    out += [Record(r.id, dense={CSA_VECTOR: vecs[j]}) for j, r in enumerate(group)]
            writes.update_vectors(m.store, collection, out)
            done += len(out)
            bar.update(len(page))
    return done


def caption_records(m: ModelState, ids: Sequence[PointId], units: np.ndarray) -> list[Record]:
    """The caption vectors (sparse, embedding, boundary) of items with caption ``units``."""
    if len(ids) == 0:
        return []
    vecs, boundary = relative(m, units, "text")
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
    m: ModelState,
    collection: str,
    *,
    incremental: bool,
    new_text_units: np.ndarray | None = None,
    deleted: Sequence[int] | None = None,
) -> int:
    """Re-compute the caption vectors an anchor edit affects (all of them if not incremental).

    The same rule as :mod:`asif_qdrant.retriever.recompute`: a new text anchor affects the
    captions whose boundary it reaches (a dense query on ``caption_kth``), a deleted one the
    captions whose vector gives it a positive weight (one sparse query). Returns how many
    were re-computed.
    """
    store = m.store
    if incremental:
        affected: set[PointId] = set()
        if new_text_units is not None and len(new_text_units):
            affected |= affected_by_add(store, collection, CAPTION_VECTOR, new_text_units)
        if deleted:
            affected |= affected_by_delete(store, collection, deleted, CAPTION_SPARSE)
        ids = sorted_ids(affected)
        recs = [
            r
            for start in range(0, len(ids), CHUNK)
            for r in store.retrieve(
                collection, ids[start : start + CHUNK], with_vectors=[CAPTION_VECTOR]
            )
        ]
    else:
        recs = [
            r
            for r in store.scroll(collection, with_vectors=[CAPTION_VECTOR], batch_size=CHUNK)
            if CAPTION_VECTOR in r.dense
        ]
    for start in range(0, len(recs), CHUNK):
        chunk = recs[start : start + CHUNK]
        units = np.stack([np.asarray(r.dense[CAPTION_VECTOR], np.float32) for r in chunk])
        writes.update_vectors(store, collection, caption_records(m, [r.id for r in chunk], units))
    return len(recs)


def after_edit(
    m: ModelState,
    *,
    previous_version: int,
    new_units: dict[str, np.ndarray] | None,
    deleted: Sequence[int] | None,
    progress: bool = False,
) -> dict[str, float]:
    """Bring every catalog's CSA and caption vectors up to date after an anchor edit.

    Runs before :func:`asif_qdrant.retriever.recompute.update_catalogs` (while each catalog
    still records the anchor version it was indexed with). Returns the seconds per catalog.
    """
    fp = m.fingerprint
    seconds: dict[str, float] = {}
    for collection, info in sorted(fp.catalogs.items()):
        if not m.store.has_collection(collection):
            continue
        t0 = time.perf_counter()
        refresh_extra_vectors(
            m,
            collection,
            incremental=info.get("anchor_version") == previous_version,
            new_text_units=(new_units or {}).get("text"),
            deleted=deleted,
            progress=progress,
        )
        seconds[collection] = time.perf_counter() - t0
    return seconds


def refresh_extra_vectors(
    m: ModelState,
    collection: str,
    *,
    incremental: bool,
    new_text_units: np.ndarray | None = None,
    deleted: Sequence[int] | None = None,
    progress: bool = False,
) -> None:
    """Bring one catalog's CSA vectors (all) and caption vectors (as :func:`update_captions`).

    What an anchor edit (``incremental``) and a full re-index (not) do beyond ASIF vectors.
    """
    spec = m.store.collection_spec(collection)
    if CSA_VECTOR in spec.dense and m.fingerprint.csa_dim is not None:
        refresh_csa(m, collection, progress=progress)
    if CAPTION_SPARSE in spec.sparse and CAPTION_KTH in spec.dense:
        update_captions(
            m,
            collection,
            incremental=incremental,
            new_text_units=new_text_units,
            deleted=deleted,
        )
