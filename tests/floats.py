"""Tolerances that follow float32 rounding, and top-k comparisons with defined near-ties.

Two BLAS kernels (OpenBLAS picks Haswell or SkylakeX by CPU) sum a float32 dot product in
different orders, so the same similarity can differ in its last bits, and two anchors whose
similarities are within that rounding can swap places. The tests compare such results with
the bounds below instead of exact equality (``scripts/test.sh`` runs them under both kernels).

* :func:`dot_rounding`: how far one float32 dot product of unit vectors may be from the exact
  one, whatever the summation order (Higham, *Accuracy and Stability of Numerical
  Algorithms*, 2002, eq. 3.5: ``gamma_n = n u / (1 - n u)``), inputs' own rounding included.
* :func:`weight_rounding`: the matching bound on ASIF weights ``s**p / ||s**p||``.
* :func:`assert_topk_match`: two best-first lists are the same up to near-ties: every
  position's score agrees within ``tol``; an id found in both has the same score within
  ``tol`` (so a swap only happens between scores within ``2 tol`` of each other); an id found
  in only one list scores within ``2 tol`` of that list's last score (a tie at the k-th place).

Example:
    >>> import numpy as np
    >>> assert_topk_match([[3, 1, 2]], [[0.9, 0.5, 0.5]], [[3, 2, 1]], [[0.9, 0.5, 0.5]], tol=1e-7)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["F32_UNIT_ROUNDOFF", "assert_topk_match", "dot_rounding", "weight_rounding"]

#: The unit roundoff of float32: half the distance from 1 to the next float32.
F32_UNIT_ROUNDOFF = float(np.finfo(np.float32).eps) / 2


def dot_rounding(dim: int) -> float:
    """Bound on ``|fl32(a . b) - a . b|`` for unit vectors of ``dim`` float32 values.

    ``gamma_{dim+1}``: ``dim`` products and sums in any order, plus the rounding of the
    inputs to float32. Two kernels' results differ by at most twice this.

    Example:
        >>> f"{dot_rounding(24):.2e}"
        '1.49e-06'
    """
    n = dim + 1
    return n * F32_UNIT_ROUNDOFF / (1 - n * F32_UNIT_ROUNDOFF)


def weight_rounding(sims: np.ndarray, p: float, dim: int) -> np.ndarray:
    """Per row, how far two kernels' ASIF weights of the same top-k similarities may differ.

    A weight is ``w_i = s_i**p / N`` (``N`` the norm of the row's ``s**p``). A change ``d``
    of each similarity changes ``w_i`` by at most ``p * w_i * d / s_i`` and ``N`` by the same
    relative amount, so by at most ``2 p d max_i(w_i / s_i) = 2 p d w_1 / s_1`` (``w / s``
    grows with ``s`` for ``p >= 1``), with ``d = 2 dot_rounding(dim)``, plus one float32
    rounding of the weight itself.

    Args:
        sims: ``(m, k)`` the kept similarities, best first.
        p: The ASIF exponent (>= 1).
        dim: The embeddings' width.

    Returns:
        ``(m,)`` absolute tolerances.
    """
    s = np.clip(np.asarray(sims, dtype=np.float64), 0.0, None)
    w = s**p
    norm = np.linalg.norm(w, axis=1)
    top = np.where(s[:, 0] > 0, w[:, 0] / np.where(norm > 0, norm, 1.0) / s[:, 0], 0.0)
    d = 2 * dot_rounding(dim)
    return 2 * p * d * top + 2 * F32_UNIT_ROUNDOFF


def assert_topk_match(ids_a: Any, scores_a: Any, ids_b: Any, scores_b: Any, *, tol: Any) -> None:
    """Assert two sets of best-first top-k lists equal up to near-ties (see module doc).

    Args:
        ids_a: ``(m, k)`` ids (or a list of 1-D arrays).
        scores_a: Their scores, best first.
        ids_b: The other result's ids.
        scores_b: Its scores.
        tol: A scalar or one tolerance per row: how far one score may move by rounding.
    """
    tols = np.broadcast_to(np.asarray(tol, dtype=np.float64), (len(ids_a),))
    for row, (ia, sa, ib, sb, t) in enumerate(
        zip(ids_a, scores_a, ids_b, scores_b, tols, strict=True)
    ):
        ia, ib = np.asarray(ia).tolist(), np.asarray(ib).tolist()
        sa, sb = np.asarray(sa, np.float64), np.asarray(sb, np.float64)
        assert len(ia) == len(ib), (row, len(ia), len(ib))
        np.testing.assert_allclose(sa, sb, rtol=0, atol=t, err_msg=f"row {row}: scores")
        in_a, in_b = dict(zip(ia, sa, strict=True)), dict(zip(ib, sb, strict=True))
        for i in set(in_a) & set(in_b):
            assert abs(in_a[i] - in_b[i]) <= t, (row, i, in_a[i], in_b[i], t)
        for only, last in ((set(in_a) - set(in_b), sa[-1]), (set(in_b) - set(in_a), sb[-1])):
            for i in only:
                score = in_a.get(i, in_b.get(i))
                assert abs(score - last) <= 2 * t, f"row {row}: id {i} is no near-tie ({t})"
