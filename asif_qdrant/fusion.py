"""Rank fusion in numpy: the formula Qdrant's engine uses, for rankings computed outside it.

Catalog searches fuse their rankings inside the engine (``Store.query_fusion``); zero-shot
classification with ``method="hybrid"`` ranks a handful of labels in memory and fuses them
here, with the same formula and constant.

Example:
    >>> import numpy as np
    >>> rrf_scores(np.array([[0.9, 0.1, 0.5]]), np.array([[0.2, 0.3, 0.1]]), k=2).round(3)
    array([[0.833, 0.75 , 0.583]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_RRF_K", "rrf_scores"]

#: Qdrant's reciprocal-rank-fusion constant.
DEFAULT_RRF_K = 2


def rrf_scores(
    *score_matrices: np.ndarray, k: int = DEFAULT_RRF_K, positive: Sequence[bool] = ()
) -> np.ndarray:
    """Reciprocal rank fusion of ``(queries, items)`` score matrices: ``sum 1 / (k + rank)``.

    Qdrant's formula: ``rank`` counts from 0 (the best item of a ranking adds ``1 / k``).
    Each matrix ranks every item of a row (ties in item order). With ``positive[i]`` true,
    only items scoring above 0 in matrix ``i`` are in its ranking (a sparse search returns no
    item that shares nothing with the query).

    Args:
        *score_matrices: ``(queries, items)`` scores, one matrix per ranking.
        k: The fusion constant (>= 1).
        positive: Per matrix: rank only the items scoring above 0.

    Returns:
        ``float64`` fused scores of the same shape.
    """
    out = np.zeros(np.asarray(score_matrices[0]).shape)
    for i, scores in enumerate(score_matrices):
        s = np.asarray(scores, dtype=np.float64)
        order = np.argsort(-s, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(s.shape[1])[None, :], axis=1)
        contrib = 1.0 / (k + ranks)
        if i < len(positive) and positive[i]:
            contrib = np.where(s > 0, contrib, 0.0)
        out += contrib
    return out
