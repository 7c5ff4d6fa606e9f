"""Catalog search: prepared queries (sparse, CSA or both fused) run by the engine, then floors.

One text query, end to end (``ASIF.search`` -> :func:`search_batch`): the options are
validated once (:class:`~asif_qdrant.types.SearchOptions`), the text is encoded and becomes
a sparse relative vector (:func:`asif_qdrant.retriever.anchors.query_vectors`), the engine
scores it against the catalog's stored sparse vectors (``Store.query_sparse``, the ASIF dot
product), and the floors drop what scores too low or shares too few anchors.

Example:
    >>> shared_anchors(SparseVector([1, 2], [0.6, 0.8]), SparseVector([2, 3], [1.0, 0.0]))
    1
    >>> from asif_qdrant import ASIF
    >>> import tempfile, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> with ASIF(path=tempfile.mkdtemp(), k=4, csa_dim=3,
    ...           image_encoder="precomputed/image", text_encoder="precomputed/text",
    ...           show_progress_bar=False) as asif:
    ...     _ = asif.add_anchor_embeddings(rng.random((12, 8)), rng.random((12, 4)))
    ...     _ = asif.index_embeddings("items", rng.random((5, 8)), "image",
    ...                               caption_embeddings=rng.random((5, 4)))
    ...     q = rng.random((1, 8))  # one precomputed image embedding
    ...     (csa,) = asif.search_embeddings("items", q, "image", method="csa", limit=2)
    ...     (hyb,) = asif.search_embeddings("items", q, "image", method="hybrid")
    ...     (cap,) = asif.search_embeddings("items", q, "image", target="caption")
    ...     len(csa), len(hyb), len(cap) > 0
    (2, 5, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from asif_qdrant.errors import CollectionNotFoundError, InvalidInputError, InvalidParameterError
from asif_qdrant.retriever.anchors import encode_queries, query_vectors, relative
from asif_qdrant.retriever.calibration import confidence
from asif_qdrant.retriever.catalogs import warn_if_stale
from asif_qdrant.retriever.crossgap import csa_model, invert_queries
from asif_qdrant.retriever.layout import CAPTION_SPARSE, CSA_VECTOR, SPARSE
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.store.base import Prefetch
from asif_qdrant.types import Hit, ImageInput, Modality, SearchOptions, SparseVector

__all__ = [
    "TWO_STAGE_CANDIDATES",
    "TWO_STAGE_QUERY_NNZ",
    "search_batch",
    "search_embeddings",
    "search_options",
    "shared_anchors",
]

#: The two-stage settings that keep recall@10 >= 0.99 against exact full-vector scoring
#: (``SearchOptions(query_nnz=..., prefetch_limit=...)``; ``python -m benchmarks.catalog``,
#: docs/PERFORMANCE.md): the query's 128 largest weights find 100 candidates, rescored by
#: the full query (64 weights: recall@10 0.978 at 100k items, 10k anchors). Not the default:
#: the embedded engine reads sparse vectors slowly when it rescores, so two stages measured
#: slower than one there.
TWO_STAGE_QUERY_NNZ = 128
TWO_STAGE_CANDIDATES = 100


def shared_anchors(a: SparseVector | None, b: SparseVector | None) -> int:
    """How many anchors carry a positive weight in both vectors."""
    if a is None or b is None:
        return 0
    return int(np.intersect1d(a.indices[a.values > 0], b.indices[b.values > 0]).size)


def search_options(
    m: ModelState, collection: str, options: SearchOptions | None, fields: Mapping[str, Any]
) -> SearchOptions:
    """Validate the options of a search, then what they need of the catalog."""
    opts = SearchOptions.merge(options, **fields)
    if not m.store.has_collection(collection):
        raise CollectionNotFoundError(
            f"The catalog collection '{collection}' does not exist: index items into it "
            "with ASIF.index() first."
        )
    if opts.method != "asif":
        csa_model(m)  # raises a clear error without CSA
    spec = m.store.collection_spec(collection)
    if opts.method != "asif" and CSA_VECTOR not in spec.dense:
        raise InvalidParameterError(
            f"The catalog '{collection}' has no CSA vectors (it was indexed before CSA was "
            f"enabled): run asif.reindex({collection!r}) with csa_dim set (or index into "
            "it again) to add them, then search with method='csa' or 'hybrid'."
        )
    if opts.target == "caption" and CAPTION_SPARSE not in spec.sparse:
        raise InvalidParameterError(
            f"The catalog '{collection}' has no caption vectors: index image items with "
            "captions (index(..., captions=[...]) or index_embeddings(..., "
            "caption_embeddings=...)) to search it with target='caption'."
        )
    warn_if_stale(m, collection)
    return opts


def search_batch(
    m: ModelState,
    collection: str,
    queries: Sequence[str | ImageInput | SparseVector],
    opts: SearchOptions,
) -> list[list[Hit]]:
    """Search with raw queries: texts (str), images, or sparse vectors."""
    queries = list(queries)
    if opts.method == "asif" and opts.query_via == "native" and opts.min_confidence is None:
        return _run(m, collection, query_vectors(m, queries), None, opts)
    if any(isinstance(q, SparseVector) for q in queries):
        raise InvalidInputError(
            "A SparseVector query works with method='asif', query_via='native' and no "
            "min_confidence only: the other options need the query itself (a text or an "
            "image), or use search_embeddings() with its embedding."
        )
    mods: list[Modality] = ["text" if isinstance(q, str) else "image" for q in queries]
    units: list[np.ndarray] = [np.zeros(0, np.float32)] * len(queries)
    for modality in ("image", "text"):
        rows = [i for i, x in enumerate(mods) if x == modality]
        if rows:
            emb = encode_queries(m, [queries[i] for i in rows], modality)
            for i, u in zip(rows, emb, strict=True):
                units[i] = u
    return search_embeddings(m, collection, units, mods, opts)


def search_embeddings(
    m: ModelState,
    collection: str,
    units: Sequence[np.ndarray],
    mods: Sequence[Modality],
    opts: SearchOptions,
) -> list[list[Hit]]:
    """Search with unit query embeddings (each of the given modality)."""
    m.require_anchors()
    n = len(units)
    sparse: list[SparseVector | None] = [None] * n
    dense: list[np.ndarray | None] = [None] * n
    refused: set[int] = set()
    need_sparse = opts.method != "csa" or opts.min_shared_anchors is not None
    for modality in ("image", "text"):
        rows = [i for i in range(n) if mods[i] == modality]
        if not rows:
            continue
        u = np.stack([units[i] for i in rows]).astype(np.float32)
        if opts.min_confidence is not None:
            conf = confidence(m, u, modality)
            refused.update(i for i, c in zip(rows, conf, strict=True) if c < opts.min_confidence)
        if need_sparse:
            vecs, _ = relative(m, u, modality)
            if opts.query_via == "invert":
                inv, other = invert_queries(m, vecs, modality)
                vecs, _ = relative(m, inv, other)
            for i, v in zip(rows, vecs, strict=True):
                sparse[i] = v
        if opts.method != "asif":
            model = csa_model(m)
            assert model is not None
            for i, row in zip(rows, model.query_vectors(u, modality), strict=True):
                dense[i] = row
    out = _run(m, collection, sparse, dense, opts)  # type: ignore[arg-type]
    return [[] if i in refused else hits for i, hits in enumerate(out)]


def _run(
    m: ModelState,
    collection: str,
    sparse: list[SparseVector] | None,
    dense: list[np.ndarray | None] | None,
    opts: SearchOptions,
) -> list[list[Hit]]:
    """Run prepared queries: sparse, dense CSA, or both fused; then the floors."""
    method, limit, flt = opts.method, opts.limit, opts.payload_filter
    vn = CAPTION_SPARSE if opts.target == "caption" else SPARSE
    if method == "asif":
        assert sparse is not None
        prefetch = None
        if opts.query_nnz is not None and opts.target == "item":  # two stages, one call
            prefetch = (opts.query_nnz, opts.candidates)
        res = m.store.query_sparse(collection, vn, sparse, limit, filter=flt, prefetch=prefetch)
    else:
        assert dense is not None
        res = []
        for j, q in enumerate(dense):
            assert q is not None
            if method == "csa":
                stages = [Prefetch(CSA_VECTOR, q, limit)]
            else:
                assert sparse is not None
                pl = opts.candidates
                stages = [Prefetch(SPARSE, sparse[j], pl), Prefetch(CSA_VECTOR, q, pl)]
            res.append(
                m.store.query_fusion(
                    collection,
                    stages,
                    limit,
                    fusion=None if method == "csa" else opts.fusion,
                    filter=flt,
                )
            )
    out = [[Hit(h.id, h.score, h.payload) for h in hits] for hits in res]
    if opts.min_score is not None:
        out = [[h for h in hits if h.score >= opts.min_score] for hits in out]
    if opts.min_shared_anchors is not None:
        assert sparse is not None
        ids = list({h.id: None for hits in out for h in hits})
        stored = {
            r.id: r.sparse.get(vn) for r in m.store.retrieve(collection, ids, with_vectors=[vn])
        }
        out = [
            [h for h in hits if shared_anchors(q, stored.get(h.id)) >= opts.min_shared_anchors]
            for q, hits in zip(sparse, out, strict=True)
        ]
    return out
