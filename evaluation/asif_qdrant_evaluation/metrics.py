"""Retrieval and classification metrics, from score matrices, with exact tie handling.

Every metric takes a score matrix (one row per query, one column per catalog item or class)
and the index of each query's one correct column. Ties are handled as if they were broken at
random, and the *expected* value is returned, so that two implementations that give the same
scores give the same numbers whatever order their search engine returns tied items in (a
query that shares no anchor with anything scores 0 against every item, a large tie). The
evaluation counts scores within :data:`SCORE_TOLERANCE` (1e-6) of each other as tied: below
the float32 resolution at which Qdrant computes them.

With ``g`` items scoring strictly above the target and ``t`` items (the target included)
scoring exactly the same as it:

* the target's expected rank is ``g + (t + 1) / 2`` (1 = best);
* the chance that it lands in the top ``k`` is ``clip((k - g) / t, 0, 1)``;
* top-1 accuracy is the chance that it lands first: ``1 / t`` when ``g == 0``, else 0.

For queries with several relevant items (image->image retrieval: every stamp of the same
category), :func:`average_precision` and :func:`precision_at_k` return the expected average
precision and precision@k under random tie-breaking (exact, per McSherry and Najork, ECIR 2008).

Example:
    >>> import numpy as np
    >>> from asif_qdrant_evaluation.metrics import recall_at_k, mean_rank, accuracy
    >>> scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.2, 0.7], [0.0, 0.0, 0.0]])
    >>> targets = [0, 1, 2]
    >>> recall_at_k(scores, targets, 1)  # (1 + 0 + 1/3) / 3
    0.4444444444444444
    >>> mean_rank(scores, targets)  # (1 + 2.5 + 2) / 3
    1.8333333333333333
    >>> accuracy(scores, targets)
    0.4444444444444444
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from asif_qdrant.errors import InvalidInputError, check_int

#: Scores closer than this count as tied in the evaluation's tables (float32 resolution).
SCORE_TOLERANCE = 1e-6
#: How far the same score may move between two implementations (float32 Qdrant or BLAS,
#: float64 numpy): half the tie tolerance, above ``gamma_8 = 8 u`` (u = 2**-24), the worst-case
#: rounding of a float32 dot product of 8 unit terms, and well above the typical one of more.
#: A query with an item whose gap to its target lies within this of ``SCORE_TOLERANCE`` has
#: rank counts that rounding may change (:func:`tolerance_edge`).
SCORE_ROUNDING = SCORE_TOLERANCE / 2

__all__ = [
    "SCORE_ROUNDING",
    "SCORE_TOLERANCE",
    "accuracy",
    "accuracy_from_counts",
    "average_precision",
    "chance_mean_rank",
    "chance_recall",
    "majority_accuracy",
    "mean_average_precision",
    "mean_rank",
    "mean_rank_from_counts",
    "precision_at_k",
    "rank_counts",
    "recall_at_k",
    "recall_from_counts",
    "recalls",
    "tolerance_edge",
]


def _check(
    scores: np.ndarray, targets: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise InvalidInputError(
            f"'scores' must be a 2-D array (queries, items). Got shape {s.shape}."
        )
    t = np.asarray(targets)
    if t.ndim != 1 or len(t) != s.shape[0]:
        raise InvalidInputError(
            f"'targets' must hold one column index per query ({s.shape[0]}). Got shape {t.shape}."
        )
    if len(t) and (not np.issubdtype(t.dtype, np.integer) or t.min() < 0 or t.max() >= s.shape[1]):
        raise InvalidInputError(
            f"'targets' must be integer column indices in [0, {s.shape[1]}). Got {t[:5]!r}..."
        )
    if np.isnan(s).any():
        row = int(np.argwhere(np.isnan(s))[0][0])
        raise InvalidInputError(f"'scores' must not hold NaN. Row {row} does.")
    return s, t.astype(np.int64)


def rank_counts(
    scores: np.ndarray, targets: Sequence[int] | np.ndarray, *, tolerance: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: how many items score above the target, and how many tie with it.

    Args:
        scores: ``(queries, items)`` scores, higher is better.
        targets: The correct item's column for each query.
        tolerance: Scores within this distance of the target's count as tied with it. Two
            implementations of the same scores in float32 (Qdrant) and float64 (numpy) differ
            by ~1e-7; near-identical items ("The letter q." / "The letter Q.") then swap
            places unless such differences count as ties.

    Returns:
        ``(greater, tied)``: two ``int64`` arrays; ``tied`` counts the target itself, so it
        is always >= 1.

    Example:
        >>> g, t = rank_counts(np.array([[0.5, 0.9, 0.5, 0.1]]), [0])
        >>> int(g[0]), int(t[0])
        (1, 2)
        >>> g, t = rank_counts(np.array([[0.5, 0.5000001, 0.1]]), [0], tolerance=1e-6)
        >>> int(g[0]), int(t[0])
        (0, 2)
    """
    s, t = _check(scores, targets)
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise InvalidInputError(f"'tolerance' must be a number >= 0. Got {tolerance!r}.")
    target_scores = s[np.arange(len(t)), t][:, None]
    greater = (s > target_scores + tolerance).sum(axis=1)
    tied = (np.abs(s - target_scores) <= tolerance).sum(axis=1)
    return greater.astype(np.int64), tied.astype(np.int64)


def tolerance_edge(
    scores: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    *,
    tolerance: float = SCORE_TOLERANCE,
    rounding: float = SCORE_ROUNDING,
) -> np.ndarray:
    """Per query: whether rounding alone may change its :func:`rank_counts`.

    True when some item's score gap to the target lies within ``rounding`` of ``tolerance``
    (tied on one machine, above or below on another): a near-tie at the edge of the tie band.

    Example:
        >>> tolerance_edge(np.array([[0.5, 0.5000011, 0.1], [0.5, 0.6, 0.1]]), [0, 0]).tolist()
        [True, False]
    """
    s, t = _check(scores, targets)
    gap = np.abs(s - s[np.arange(len(t)), t][:, None])
    edge = np.abs(gap - tolerance) <= rounding
    edge[np.arange(len(t)), t] = False
    return edge.any(axis=1)


def _counts(
    greater: Sequence[int] | np.ndarray, tied: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(greater, dtype=np.float64)
    t = np.asarray(tied, dtype=np.float64)
    if g.shape != t.shape or g.ndim != 1:
        raise InvalidInputError(
            f"'greater' and 'tied' must be 1-D of the same length. Got {g.shape} and {t.shape}."
        )
    if t.size and (t.min() < 1 or g.min() < 0):
        raise InvalidInputError("'tied' must be >= 1 (it counts the target) and 'greater' >= 0.")
    return g, t


def recall_from_counts(
    greater: Sequence[int] | np.ndarray, tied: Sequence[int] | np.ndarray, k: int
) -> float:
    """Expected recall@k from :func:`rank_counts` output (NaN without queries).

    Example:
        >>> recall_from_counts([0, 1, 0], [1, 2, 3], 1)  # (1 + 0 + 1/3) / 3
        0.4444444444444444
    """
    k = check_int("k", "recall_from_counts", k, minimum=1)
    g, t = _counts(greater, tied)
    if g.size == 0:
        return float("nan")
    return float(np.mean(np.clip((k - g) / t, 0.0, 1.0)))


def mean_rank_from_counts(
    greater: Sequence[int] | np.ndarray, tied: Sequence[int] | np.ndarray
) -> float:
    """Mean expected rank (1 = best) from :func:`rank_counts` output.

    Example:
        >>> mean_rank_from_counts([0, 1, 0], [1, 2, 3])  # (1 + 2.5 + 2) / 3
        1.8333333333333333
    """
    g, t = _counts(greater, tied)
    if g.size == 0:
        return float("nan")
    return float(np.mean(g + (t + 1) / 2))


def accuracy_from_counts(
    greater: Sequence[int] | np.ndarray, tied: Sequence[int] | np.ndarray
) -> float:
    """Expected top-1 accuracy from :func:`rank_counts` output.

    Example:
        >>> accuracy_from_counts([0, 1, 0], [1, 1, 4])  # (1 + 0 + 1/4) / 3
        0.4166666666666667
    """
    g, t = _counts(greater, tied)
    if g.size == 0:
        return float("nan")
    return float(np.mean(np.where(g == 0, 1.0 / t, 0.0)))


def recall_at_k(scores: np.ndarray, targets: Sequence[int] | np.ndarray, k: int) -> float:
    """Expected share of queries whose target is among the top ``k`` (ties at random).

    Args:
        scores: ``(queries, items)`` scores.
        targets: The correct column per query.
        k: The cut-off, >= 1.

    Returns:
        The recall in ``[0, 1]`` (NaN without queries).

    Example:
        >>> recall_at_k(np.array([[0.1, 0.9], [0.8, 0.2]]), [1, 1], 1)
        0.5
    """
    k = check_int("k", "recall_at_k", k, minimum=1)
    return recall_from_counts(*rank_counts(scores, targets), k)


def recalls(
    scores: np.ndarray, targets: Sequence[int] | np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """``{"R@1": ..., "R@5": ..., "R@10": ...}`` for the given cut-offs.

    Example:
        >>> recalls(np.array([[0.1, 0.9]]), [1], ks=(1,))
        {'R@1': 1.0}
    """
    greater, tied = rank_counts(scores, targets)
    return {f"R@{k}": recall_from_counts(greater, tied, k) for k in ks}


def mean_rank(scores: np.ndarray, targets: Sequence[int] | np.ndarray) -> float:
    """Mean expected rank of the target (1 = best; ties at random).

    Example:
        >>> mean_rank(np.array([[0.0, 0.0, 0.0, 0.0]]), [2])  # all tied: (4 + 1) / 2
        2.5
    """
    return mean_rank_from_counts(*rank_counts(scores, targets))


def accuracy(scores: np.ndarray, targets: Sequence[int] | np.ndarray) -> float:
    """Expected top-1 accuracy (a tie for first place counts ``1 / t``).

    Args:
        scores: ``(samples, classes)`` scores.
        targets: The true class index per sample.

    Returns:
        The accuracy in ``[0, 1]`` (NaN without samples).

    Example:
        >>> accuracy(np.array([[0.2, 0.7], [0.5, 0.5]]), [1, 0])
        0.75
    """
    return accuracy_from_counts(*rank_counts(scores, targets))


def chance_recall(n_items: int, k: int) -> float:
    """Recall@k of a random ranking over ``n_items``: ``min(k, n) / n``.

    Example:
        >>> chance_recall(200, 5)
        0.025
    """
    n_items = check_int("n_items", "chance_recall", n_items, minimum=1)
    k = check_int("k", "chance_recall", k, minimum=1)
    return min(k, n_items) / n_items


def chance_mean_rank(n_items: int) -> float:
    """Mean rank of a random ranking over ``n_items``: ``(n + 1) / 2``.

    Example:
        >>> chance_mean_rank(9)
        5.0
    """
    n_items = check_int("n_items", "chance_mean_rank", n_items, minimum=1)
    return (n_items + 1) / 2


def majority_accuracy(targets: Sequence[int] | np.ndarray) -> float:
    """Accuracy of always predicting the most frequent class.

    Example:
        >>> majority_accuracy([0, 0, 1, 2])
        0.5
    """
    t = np.asarray(targets)
    if t.size == 0:
        return float("nan")
    return float(np.bincount(t.astype(np.int64)).max() / t.size)


def _tie_groups(scores: np.ndarray, relevant: np.ndarray, tolerance: float) -> np.ndarray:
    """``(groups, 2)``: per tie group in descending score order, its size and relevant count.

    Sorted scores closer than ``tolerance`` to their neighbour fall in the same group.
    """
    order = np.argsort(-scores, kind="stable")
    s, r = scores[order], relevant[order]
    starts = np.flatnonzero(np.r_[True, np.diff(-s) > tolerance])
    sizes = np.diff(np.r_[starts, len(s)])
    rel = np.add.reduceat(r.astype(np.int64), starts) if len(s) else np.zeros(0, np.int64)
    return np.stack([sizes, rel], axis=1)


def _check_relevance(
    scores: np.ndarray, relevant: np.ndarray, valid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(relevant, dtype=bool)
    if s.ndim != 2 or r.shape != s.shape:
        raise InvalidInputError(
            "'scores' and 'relevant' must be 2-D arrays of the same shape (queries, items). "
            f"Got {s.shape} and {r.shape}."
        )
    v = np.ones_like(r) if valid is None else np.asarray(valid, dtype=bool)
    if v.shape != s.shape:
        raise InvalidInputError(
            f"'valid' must have the shape of 'scores' {s.shape}. Got {v.shape}."
        )
    if np.isnan(s[v]).any():
        raise InvalidInputError("'scores' must not hold NaN where 'valid' is True.")
    return s, r & v, v


def _per_query(
    scores: np.ndarray,
    relevant: np.ndarray,
    valid: np.ndarray | None,
    tolerance: float,
    measure: Callable[[np.ndarray, int, int], float],
) -> np.ndarray:
    """``measure(tie groups, relevant count, valid count)`` of each query; NaN without relevant."""
    s, r, v = _check_relevance(scores, relevant, valid)
    out = np.full(len(s), np.nan)
    for q in range(len(s)):
        n_rel = int(r[q].sum())
        if n_rel:
            out[q] = measure(_tie_groups(s[q, v[q]], r[q, v[q]], tolerance), n_rel, int(v[q].sum()))
    return out


def average_precision(
    scores: np.ndarray,
    relevant: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    tolerance: float = 0.0,
) -> np.ndarray:
    """Expected average precision of each query, ties broken at random.

    AP is the mean, over the query's relevant items, of the precision at each one's rank.
    Within a tie group of ``t`` items holding ``r`` relevant ones, after ``b`` items of which
    ``rb`` are relevant, a relevant item sits at place ``j`` (uniform over ``1..t``) with on
    average ``(j - 1)(r - 1)/(t - 1)`` other relevant items ahead of it in the group, so its
    expected precision is ``mean_j (rb + 1 + (j - 1)(r - 1)/(t - 1)) / (b + j)`` (exact: the
    denominator is fixed given ``j``).

    Args:
        scores: ``(queries, items)`` scores, higher is better.
        relevant: ``(queries, items)`` booleans: which items are relevant to each query.
        valid: ``(queries, items)`` booleans: the items ranked for each query (e.g. ``False``
            on the query itself); default: every item.
        tolerance: Scores within this distance of their neighbour count as tied.

    Returns:
        ``(queries,)`` expected AP; NaN for a query without a relevant valid item.

    Example:
        >>> average_precision(np.array([[0.9, 0.8, 0.7, 0.6]]), np.array([[1, 0, 1, 0]])).round(4)
        array([0.8333])
        >>> average_precision(np.zeros((1, 2)), np.array([[1, 0]]))  # tied: (1 + 1/2) / 2
        array([0.75])
    """

    def ap(groups: np.ndarray, n_rel: int, n_valid: int) -> float:
        total, before, rel_before = 0.0, 0, 0
        for t, rr in groups:
            if rr:
                j = np.arange(1, t + 1)
                ahead = (j - 1) * (rr - 1) / (t - 1) if t > 1 else np.zeros(1)
                total += rr * float(np.mean((rel_before + 1 + ahead) / (before + j)))
            before += int(t)
            rel_before += int(rr)
        return total / n_rel

    return _per_query(scores, relevant, valid, tolerance, ap)


def precision_at_k(
    scores: np.ndarray,
    relevant: np.ndarray,
    k: int,
    *,
    valid: np.ndarray | None = None,
    tolerance: float = 0.0,
) -> np.ndarray:
    """Expected share of relevant items among each query's top ``k``, ties broken at random.

    ``k`` is capped at the number of valid items of the query. With ``k = 1`` it is the
    chance that the first result is relevant.

    Args:
        scores: ``(queries, items)`` scores.
        relevant: ``(queries, items)`` booleans.
        k: The cut-off, >= 1.
        valid: Items ranked for each query (default: all).
        tolerance: Scores within this distance of their neighbour count as tied.

    Returns:
        ``(queries,)`` expected precision@k; NaN for a query without a relevant valid item.

    Example:
        >>> s = np.array([[0.9, 0.5, 0.5, 0.1]])
        >>> precision_at_k(s, np.array([[0, 1, 0, 1]]), 2)  # 0 + 1/2 of a relevant item
        array([0.25])
    """
    k = check_int("k", "precision_at_k", k, minimum=1)

    def pk(groups: np.ndarray, n_rel: int, n_valid: int) -> float:
        kk = min(k, n_valid)
        hits, before = 0.0, 0
        for t, rr in groups:
            if before >= kk:
                break
            hits += rr * min(1.0, (kk - before) / t)
            before += int(t)
        return hits / kk

    return _per_query(scores, relevant, valid, tolerance, pk)


def mean_average_precision(
    scores: np.ndarray,
    relevant: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    tolerance: float = 0.0,
) -> float:
    """Mean of :func:`average_precision` over the queries that have a relevant item.

    Example:
        >>> mean_average_precision(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([[1, 0], [0, 0]]))
        1.0
    """
    ap = average_precision(scores, relevant, valid=valid, tolerance=tolerance)
    ap = ap[~np.isnan(ap)]
    return float(ap.mean()) if ap.size else float("nan")
