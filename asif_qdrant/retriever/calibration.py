"""A calibrated "no match": how much a query looks like the anchors of its own modality.

ASIF's relative vectors are normalised, so a query unrelated to every anchor ("an invoice for
a compiler license" against a model of clip art) still gets a unit vector and ten hits. What
tells it apart is its *best cosine to the anchors* before normalisation. Its scale depends on
the encoder and the anchors, so it is calibrated against the model's own anchors, with no
label: the **reference** is each anchor's best cosine to the *other* anchors of its modality
(leave-one-out; at most :data:`REFERENCE_SAMPLE` anchors, spread evenly over the ids, are the
held-out ones). A query's **confidence** is the share of the reference at or below its own
best cosine: 0.3 means the query is as close to the anchors as the 30% least typical anchors
are to each other. ``SearchOptions(min_confidence=...)`` refuses (returns no hit for) a query
below it; ``docs/levers/RESULTS.md`` measures the refusal of unrelated queries against the
keeping of real captions for each level (command there): at ``min_confidence=0.03``, 90% of 50
unrelated queries (gibberish, other domains) are refused and 97% of held-out Tux Paint captions
kept with the 4,085-pair pool (94.8% / 96.9% with the 674 Tux Paint pairs alone).

The reference is computed on first use and kept for the anchor version: an anchor edit
recomputes it (nothing is stored in the model).

Example:
    >>> from asif_qdrant import ASIF
    >>> import tempfile, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> text = rng.normal(size=(50, 8)) + 3.0  # anchors crowd around one direction
    >>> with ASIF(path=tempfile.mkdtemp(), k=4, image_encoder="precomputed/image",
    ...           text_encoder="precomputed/text", show_progress_bar=False) as asif:
    ...     _ = asif.add_anchor_embeddings(rng.normal(size=(50, 4)), text)
    ...     conf = asif.confidence_of_embeddings(np.stack([text[0] + 0.1, -text[0]]), "text")
    ...     bool(conf[0] > 0.5), float(conf[1])
    (True, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from asif_qdrant.relative import l2_normalize
from asif_qdrant.retriever.anchors import anchor_index, encode_queries
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.types import Modality

__all__ = [
    "REFERENCE_SAMPLE",
    "best_similarity",
    "confidence",
    "confidence_of_embeddings",
    "query_confidence",
    "reference",
]

#: At most this many anchors are held out (one at a time) to form the reference.
REFERENCE_SAMPLE = 2000


def _top(m: ModelState, unit: np.ndarray, modality: Modality, k: int) -> tuple[Any, Any]:
    """``(ids, sims)`` of the ``k`` nearest anchors of unit rows (engine or in-memory index)."""
    index = anchor_index(m, modality)
    if index is not None:
        return index.topk(unit, k)
    coll, vn = m.layout.anchors(modality)
    rows = m.store.query_dense(coll, vn, unit, limit=k)
    ids = np.array([[int(h[0]) for h in r] + [-1] * (k - len(r)) for r in rows], np.int64)
    sims = np.array([[h[1] for h in r] + [-np.inf] * (k - len(r)) for r in rows], np.float64)
    return ids, sims


def best_similarity(m: ModelState, unit: np.ndarray, modality: Modality) -> np.ndarray:
    """Each unit row's best cosine to the anchors of ``modality`` (``float64``)."""
    if len(unit) == 0:
        return np.zeros(0)
    return np.asarray(_top(m, unit, modality, 1)[1], np.float64)[:, 0]


def reference(m: ModelState, modality: Modality) -> np.ndarray:
    """The sorted best cosines of held-out anchors to the other anchors (kept per version)."""
    version = m.fingerprint.anchor_version
    cached = m.calibration_cache.get(modality)
    if cached is not None and cached[0] == version:
        return cached[1]
    m.require_anchors()
    coll, vn = m.layout.anchors(modality)
    ids = [int(r.id) for r in m.store.scroll(coll)]
    if len(ids) < 2:
        ref = np.ones(1)  # one anchor: nothing to compare it with; every query below 1 is low
    else:
        pick = np.unique(np.linspace(0, len(ids) - 1, min(REFERENCE_SAMPLE, len(ids))).round())
        chosen = [ids[int(i)] for i in pick]
        recs = m.store.retrieve(coll, chosen, with_vectors=[vn])
        unit = l2_normalize(np.stack([r.dense[vn] for r in recs]))
        top_ids, sims = _top(m, unit, modality, 2)
        own = np.array([int(r.id) for r in recs])[:, None]
        # The anchor itself is (nearly always) its own nearest: take the best other one.
        other = np.where(top_ids[:, :1] == own, sims[:, 1:2], sims[:, :1])[:, 0]
        ref = np.sort(np.asarray(other, np.float64))
    m.calibration_cache[modality] = (version, ref)
    return ref


def confidence(m: ModelState, unit: np.ndarray, modality: Modality) -> np.ndarray:
    """Each unit row's confidence: the share of the reference at or below its best cosine."""
    ref = reference(m, modality)
    best = best_similarity(m, unit, modality)
    return np.searchsorted(ref, best, side="right") / len(ref)


def confidence_of_embeddings(m: ModelState, embeddings: Any, modality: Modality) -> np.ndarray:
    """Confidence of precomputed query embeddings (``ASIF.confidence_of_embeddings``)."""
    m.layout.anchors(modality)  # validates the modality
    emb = m.check_embeddings("embeddings", embeddings, modality)
    return confidence(m, l2_normalize(emb), modality)


def query_confidence(m: ModelState, queries: Sequence[Any]) -> np.ndarray:
    """Confidence of raw queries: texts (``str``) and images (``ASIF.confidence``)."""
    queries = list(queries)
    out = np.zeros(len(queries))
    for modality in ("image", "text"):
        rows = [i for i, q in enumerate(queries) if isinstance(q, str) == (modality == "text")]
        if rows:
            unit = encode_queries(m, [queries[i] for i in rows], modality)  # type: ignore[arg-type]
            out[rows] = confidence(m, unit, modality)  # type: ignore[arg-type]
    return out
