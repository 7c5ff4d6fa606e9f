"""The math of ASIF relative representations: pure numpy, no Qdrant.

A query embedding ``q`` is represented by its cosine similarities to the anchors of its own
modality. ASIF keeps the ``k`` largest, clamps negatives to 0, raises them to the power ``p``
and L2-normalises the result: a sparse vector over anchor ids.

Negative similarities are clamped to 0 before the power. The reference code does not clamp
(with an even ``p`` a negative similarity becomes positive, with a fractional ``p`` it gives
NaN); the two agree whenever the top-k similarities are >= 0, which is the usual case. A row
whose kept similarities are all <= 0 has all-zero weights: it shares no anchor with anything,
so every ASIF score against it is 0.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.relative import relative_topk
    >>> rng = np.random.default_rng(0)
    >>> anchors = rng.normal(size=(100, 16))
    >>> idx, val = relative_topk(rng.normal(size=(2, 16)), anchors, k=5, p=8.0)
    >>> idx.shape, val.shape, idx.dtype, val.dtype
    ((2, 5), (2, 5), dtype('int64'), dtype('float32'))
    >>> bool(np.allclose(np.linalg.norm(val, axis=1), 1.0))
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from asif_qdrant.errors import (
    InvalidInputError,
    InvalidParameterError,
    check_int,
    check_matrix,
    check_real,
)
from asif_qdrant.types import SparseVector

__all__ = [
    "Power",
    "Spread",
    "check_power",
    "l2_normalize",
    "power_for_spread",
    "power_label",
    "relative_from_topk",
    "relative_topk",
    "relative_weights",
    "sparse_rows",
]

#: Memory budget (bytes) for the temporary arrays of one block of :func:`relative_topk`.
DEFAULT_MEMORY_BUDGET = 256 * 1024**2


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Return ``x`` with unit-norm rows (``float32``); all-zero rows stay zero.

    Rows are first divided by their largest absolute value, so that tiny or huge rows neither
    underflow nor overflow in float32.

    Example:
        >>> [round(float(v), 6) for v in l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])).ravel()]
        [0.6, 0.8, 0.0, 0.0]
    """
    x = np.asarray(x, dtype=np.float32)
    scale = np.max(np.abs(x), axis=-1, keepdims=True) if x.size else np.ones((*x.shape[:-1], 1))
    x = x / np.where(scale > 0, scale, 1.0).astype(np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Spread:
    """A power chosen per vector: its weights spread over ``fraction`` of its kept anchors.

    Instead of one ``p`` for every vector, each vector gets the ``p`` at which the
    perplexity of its weights (``exp`` of their entropy, normalised to sum 1: the effective
    number of anchors they spread over) is ``fraction`` times its number of kept anchors
    (``min(k, anchors)``). A query whose similarities fall off fast (close to a few anchors)
    gets a low ``p``, one whose similarities crowd together a high one, so every vector
    spreads over about as many anchors. ``p`` is searched in ``[P_MIN, P_MAX]``
    (:func:`power_for_spread`).

    Used by zero-shot classification (``ASIF(classify_spread=...)``), never by the vectors
    stored in catalogs.

    Example:
        >>> Spread(0.25)
        Spread(fraction=0.25)
    """

    fraction: float

    #: The bounds of the per-vector ``p``.
    P_MIN = 0.25
    P_MAX = 64.0
    #: Bisection steps (the ``p`` found is within ``(P_MAX - P_MIN) / 2**STEPS``).
    STEPS = 40


#: The exponent of the recipe: one ``p`` (> 0) for every vector, or :class:`Spread`.
Power: TypeAlias = "float | Spread"


def check_power(name: str, owner: str, p: Power) -> Power:
    """``p`` validated: a real > 0, or a :class:`Spread` whose fraction is in (0, 1].

    Example:
        >>> check_power("p", "f", 2), check_power("p", "f", Spread(0.5))
        (2.0, Spread(fraction=0.5))
    """
    if isinstance(p, Spread):
        fraction = check_real(f"{name}.fraction", owner, p.fraction, greater_than=0)
        if fraction > 1:
            raise InvalidParameterError(
                f"The '{name}' parameter of {owner} must spread over a fraction in (0, 1] of "
                f"the kept anchors; got {fraction!r}."
            )
        return Spread(fraction)
    return check_real(name, owner, p, greater_than=0)


def power_label(p: Power) -> str:
    """How a :data:`Power` reads in reports: ``"p=8"``, or ``"spread 0.3"``.

    Example:
        >>> power_label(8.0), power_label(Spread(0.3))
        ('p=8', 'spread 0.3')
    """
    return f"spread {p.fraction:g}" if isinstance(p, Spread) else f"p={p:g}"


def power_for_spread(similarities: np.ndarray, spread: Spread) -> np.ndarray:
    """Each row's ``p`` under :class:`Spread`: the perplexity of its weights is the target.

    The target is ``spread.fraction`` times the row's length (its kept anchors); a row's
    weights are its similarities clamped at 0 and scaled by their largest, to the power
    ``p``. Their perplexity falls as ``p`` grows, from the number of positive similarities
    (``p`` -> 0) to the number tied at the top; ``p`` is found by :attr:`Spread.STEPS`
    bisection steps in ``[P_MIN, P_MAX]`` (the bound when the target is out of reach), in
    float64, the same on every machine for the same similarities.

    Args:
        similarities: ``(m, k)`` kept similarities.
        spread: The rule.

    Returns:
        ``(m,)`` float64 exponents.

    Example:
        >>> s = np.array([[0.9, 0.5, 0.4, 0.3], [0.9, 0.89, 0.88, 0.87]])
        >>> p = power_for_spread(s, Spread(0.5))  # 2 of 4 anchors, effectively
        >>> [round(float(x), 2) for x in p]
        [3.2, 64.0]
    """
    s = np.clip(np.atleast_2d(np.asarray(similarities, dtype=np.float64)), 0.0, None)
    target = spread.fraction * s.shape[1]
    top = s.max(axis=1, keepdims=True) if s.shape[1] else np.ones((len(s), 1))
    with np.errstate(divide="ignore"):
        logs = np.log(s / np.where(top > 0, top, 1.0))  # <= 0; -inf where s == 0
    pos = np.isfinite(logs)
    logs0 = np.where(pos, logs, 0.0)

    def perplexity(p: np.ndarray) -> np.ndarray:
        a = p[:, None] * logs0  # log of the unnormalised weights (the top one is 0)
        w = np.where(pos, np.exp(a), 0.0)
        total = w.sum(axis=1)
        safe = np.where(total > 0, total, 1.0)
        return np.exp(np.log(safe) - (w * a).sum(axis=1) / safe)

    lo = np.full(len(s), Spread.P_MIN)
    hi = np.full(len(s), Spread.P_MAX)
    for _ in range(Spread.STEPS):
        mid = (lo + hi) / 2
        wide = perplexity(mid) > target  # still spread over too many: raise p
        lo = np.where(wide, mid, lo)
        hi = np.where(wide, hi, mid)
    out = (lo + hi) / 2
    # out of reach: the bound itself
    out[perplexity(np.full(len(s), Spread.P_MIN)) <= target] = Spread.P_MIN
    out[perplexity(np.full(len(s), Spread.P_MAX)) >= target] = Spread.P_MAX
    return out


def relative_weights(similarities: np.ndarray, p: Power = 8.0) -> np.ndarray:
    """Turn kept top-k similarities into ASIF weights: clamp at 0, power ``p``, L2-normalise.

    This is the one place where the weights are computed (through
    :func:`relative_from_topk`, the one recipe every path uses).

    Args:
        similarities: ``(m, k)`` or ``(k,)`` cosine similarities.
        p: The exponent, > 0, or a :class:`Spread` (a ``p`` per row).

    Returns:
        ``float32`` weights of the same shape; rows are unit norm unless all their
        similarities are <= 0, in which case they are all 0.

    Example:
        >>> [round(float(w), 4) for w in relative_weights(np.array([0.5, 0.5, -0.2]), p=2.0)]
        [0.7071, 0.7071, 0.0]
        >>> relative_weights(np.array([0.1, 0.09]), p=400.0)[0]  # no underflow to zero
        np.float32(1.0)
    """
    p = check_power("p", "relative_weights", p)
    s = np.clip(np.asarray(similarities, dtype=np.float64), 0.0, None)
    # float64, and each row scaled by its largest similarity first (the normalisation
    # cancels the scale): s**p of small similarities would underflow, float32 at p=8 and
    # even float64 at large p (0.1**400), leaving a row of zeros that matches nothing.
    top = s.max(axis=-1, keepdims=True) if s.shape[-1] else np.ones((*s.shape[:-1], 1))
    if isinstance(p, Spread):
        p = power_for_spread(s, p).reshape(*s.shape[:-1], 1)
    w = np.power(s / np.where(top > 0, top, 1.0), p)
    norms = np.linalg.norm(w, axis=-1, keepdims=True)
    return (w / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def relative_from_topk(
    ids: np.ndarray, similarities: np.ndarray, k: int, p: Power
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ASIF recipe on candidate anchors: top-k, clamp, power ``p``, L2-normalise.

    The one place where candidates become a relative representation: :func:`relative_topk`,
    the in-memory anchor indexes (:func:`asif_qdrant.anchor_index.relative_search`) and the
    Qdrant engine path of the model all end here. Candidates are ranked by decreasing
    similarity, ties by the lower anchor id (so the result never depends on the order in
    which a search returned equal anchors), and the best ``k`` are kept.

    Args:
        ids: ``(m, c)`` candidate anchor ids of ``m`` queries (any order).
        similarities: ``(m, c)`` their cosine similarities (float32 or float64).
        k: How many to keep, >= 1 (``min(k, c)`` are kept).
        p: The exponent, > 0, or a :class:`Spread`.

    Returns:
        ``(ids, weights, boundary)``: ``int64`` ids and ``float32`` weights, both
        ``(m, min(k, c))`` and best first, and each row's boundary: the similarity of its
        k-th kept anchor clamped at 0 (0 when fewer than ``k`` candidates exist). An anchor
        below the boundary cannot change the vector (the editing rule of the model).

    Example:
        >>> ids, w, b = relative_from_topk(np.array([[7, 3, 5]]), np.array([[0.5, 0.9, 0.5]]),
        ...                                k=2, p=1.0)
        >>> ids.tolist(), [round(float(x), 3) for x in w[0]], b.tolist()
        ([[3, 5]], [0.874, 0.486], [0.5])
    """
    ids = np.asarray(ids)
    sims = np.asarray(similarities)
    kk = min(int(k), sims.shape[1])
    order = np.lexsort((ids, -sims), axis=1)[:, :kk]
    kept = np.take_along_axis(sims, order, axis=1).astype(np.float32)
    kept_ids = np.take_along_axis(ids, order, axis=1).astype(np.int64)
    boundary = np.zeros(len(kept), np.float32)
    if kk == k and kk:
        boundary = np.maximum(kept[:, k - 1], 0.0).astype(np.float32)
    return kept_ids, relative_weights(kept, p), boundary


def sparse_rows(ids: np.ndarray, weights: np.ndarray) -> list[SparseVector]:
    """One sparse vector per row of ``(ids, weights)``; anchors of weight 0 are left out.

    Example:
        >>> v = sparse_rows(np.array([[4, 2]]), np.array([[1.0, 0.0]]))[0]
        >>> v.indices.tolist(), v.values.tolist()
        ([4], [1.0])
    """
    out = []
    for row_ids, row_w in zip(ids, weights, strict=True):
        keep = row_w > 0
        out.append(SparseVector(indices=row_ids[keep].astype(np.uint64), values=row_w[keep]))
    return out


def relative_topk(
    queries: np.ndarray,
    anchors: np.ndarray,
    k: int = 800,
    p: float = 8.0,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse ASIF relative representations of ``queries`` with respect to ``anchors``.

    Both inputs are L2-normalised inside (any norms are accepted). Anchors are streamed in
    blocks and each block's top-k is merged into a running top-k, so the temporary memory
    stays within ``memory_budget`` plus the output (1M anchors x 64 queries of d=384 stays
    well under 1 GiB).

    Args:
        queries: ``(m, d)`` query embeddings.
        anchors: ``(n, d)`` anchor embeddings of the same modality, n >= 1.
        k: How many anchors to keep per query, >= 1; ``min(k, n)`` are returned.
        p: The exponent applied to the kept similarities, > 0.
        memory_budget: Bytes for the temporaries of one block (default 256 MiB).

    Returns:
        ``(indices, values)``: ``int64`` rows of ``anchors`` and ``float32`` weights, both
        ``(m, min(k, n))``, each row sorted by decreasing weight and L2-normalised.

    Raises:
        InvalidParameterError: If ``k`` < 1 or ``p`` <= 0.
        InvalidInputError: If the arrays are not 2-D, dims differ, ``anchors`` is empty or
            any value is NaN / inf.

    Example:
        >>> anchors = np.eye(3)
        >>> idx, val = relative_topk(np.array([[1.0, 0.5, 0.0]]), anchors, k=2, p=1.0)
        >>> idx.tolist(), [round(float(v), 3) for v in val[0]]
        ([[0, 1]], [0.894, 0.447])
    """
    k = check_int("k", "relative_topk", k, minimum=1)
    p = check_real("p", "relative_topk", p, greater_than=0)
    memory_budget = check_int("memory_budget", "relative_topk", memory_budget, minimum=1)
    q = check_matrix(queries, "queries")
    a = check_matrix(anchors, "anchors")
    if a.shape[0] == 0:
        raise InvalidInputError("'anchors' is empty: relative_topk needs at least one anchor.")
    if q.shape[1] != a.shape[1]:
        raise InvalidInputError(
            f"'queries' and 'anchors' must have the same dim. Got {q.shape[1]} and {a.shape[1]}."
        )
    m, d = q.shape
    n = a.shape[0]
    kk = min(k, n)
    out_idx = np.empty((m, kk), dtype=np.int64)
    out_w = np.empty((m, kk), dtype=np.float32)
    if m == 0:
        return out_idx, out_w

    qn = l2_normalize(q)
    # Rows per block: the normalised anchor block (d float32 a row), the similarity block
    # (one float32 per query row) and argpartition's int64 indices must fit the budget.
    q_chunk = max(1, min(m, 1024))
    per_row = 4 * d + 12 * q_chunk
    block = int(max(kk, min(n, memory_budget // per_row)))

    for q0 in range(0, m, q_chunk):
        qb = qn[q0 : q0 + q_chunk]
        best_sim: np.ndarray | None = None
        best_idx: np.ndarray | None = None
        for a0 in range(0, n, block):
            ab = l2_normalize(a[a0 : a0 + block])
            sims = qb @ ab.T  # (mq, nb) float32
            nb = sims.shape[1]
            if nb > kk:
                part = np.argpartition(sims, nb - kk, axis=1)[:, nb - kk :]
            else:
                part = np.broadcast_to(np.arange(nb), (sims.shape[0], nb))
            cand_sim = np.take_along_axis(sims, part, axis=1)
            cand_idx = part.astype(np.int64) + a0
            if best_sim is not None and best_idx is not None:
                cand_sim = np.concatenate([best_sim, cand_sim], axis=1)
                cand_idx = np.concatenate([best_idx, cand_idx], axis=1)
                if cand_sim.shape[1] > kk:
                    keep = np.argpartition(cand_sim, cand_sim.shape[1] - kk, axis=1)[:, -kk:]
                    cand_sim = np.take_along_axis(cand_sim, keep, axis=1)
                    cand_idx = np.take_along_axis(cand_idx, keep, axis=1)
            best_sim, best_idx = cand_sim, cand_idx
        assert best_sim is not None and best_idx is not None  # n >= 1 guarantees one block
        # Best first; ties broken by the lower anchor row, deterministically.
        idx, w, _ = relative_from_topk(best_idx, best_sim, kk, p)
        out_idx[q0 : q0 + q_chunk] = idx
        out_w[q0 : q0 + q_chunk] = w

    return out_idx, out_w
