"""IVF with a reduced first stage: lists scanned in a PCA space, survivors rescored exactly.

The lists, their training and the calibrated ``nprobe`` are those of
:class:`~asif_qdrant.anchor_index.IVFIndex`. What changes is what a probed list costs: beside
each full ``float32`` row the index keeps its projection on the ``dims`` leading principal
directions of the anchors (uncentred, so the shared mean direction is kept), laid out in the
same list order. A query scans its probed lists in that space (``dims / d`` of the bytes: a
half at the default ``d / 2``), keeps its best ``C`` candidates, and rescores those exactly in
``float32`` from the full rows; the exact top-k of the candidates is returned, ties at the
k-th place going to the lower id.

``C`` is calibrated like ``nprobe``, on the same held-out anchors: for each of their exact
neighbours in a probed list, its rank by reduced score among the rows of the probed lists;
``C`` is the smallest count that keeps the recall and the estimated sparse-vector cosine within
a small slack of what the probed lists allow, times the safety factor.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.anchor_index import IVFPCAIndex
    >>> rng = np.random.default_rng(0)
    >>> centers = rng.normal(size=(20, 32))
    >>> x = centers[rng.integers(0, 20, 3000)] + 0.5 * rng.normal(size=(3000, 32))
    >>> index = IVFPCAIndex(n_lists=30, dims=8).build(np.arange(3000), x)
    >>> ids, sims = index.topk(x[:4] + 0.1, k=50)
    >>> ids.shape, bool((np.diff(sims, axis=1) <= 0).all())
    ((4, 50), True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from asif_qdrant.anchor_index.base import segmented_topk, single_threaded_blas
from asif_qdrant.anchor_index.ivf import IVFIndex
from asif_qdrant.errors import check_int, check_real

__all__ = ["IVFPCAIndex", "principal_directions"]

_CHUNK = 65536
#: Rows sampled to fit the principal directions.
_PCA_SAMPLE = 200_000
#: Calibration: the largest candidate count considered, in multiples of k.
_MAX_CANDIDATES = 16
#: Calibration queries used for C (of those that calibrated ``nprobe``).
_CALIBRATION = 192


def principal_directions(x: np.ndarray, dims: int, *, sample: int = _PCA_SAMPLE) -> np.ndarray:
    """The ``dims`` leading (uncentred) principal directions of the rows of ``x``: ``(d, dims)``.

    Uncentred: the directions of the second-moment matrix ``x.T @ x``, so that dot products
    of projections approximate dot products of rows (the shared mean direction included).

    Example:
        >>> x = np.diag([3.0, 2.0, 1.0]).astype(np.float32)
        >>> np.abs(principal_directions(x, 2)).round(3).tolist()
        [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    """
    d = x.shape[1]
    dims = max(1, min(dims, d))
    if len(x) > sample:
        pick = np.sort(np.random.default_rng(0).choice(len(x), size=sample, replace=False))
        x = x[pick]
    moment = np.zeros((d, d), np.float64)
    for s in range(0, len(x), _CHUNK):
        blk = np.asarray(x[s : s + _CHUNK], np.float64)
        moment += blk.T @ blk
    _, vecs = np.linalg.eigh(moment)
    return np.ascontiguousarray(vecs[:, ::-1][:, :dims], dtype=np.float32)


class IVFPCAIndex(IVFIndex):
    """IVF lists scanned in a PCA-reduced space, the best ``C`` rescored exactly (``float32``).

    Args:
        dims: Dimensions of the reduced first stage; default half the embedding dim
            (fewer need many more candidates: at 1M x 384, C is about 11k at 128 dims,
            5k at 192).
        candidates: Candidates rescored per query (``C``); default: calibrated per ``k``.
        recall_slack: Recall the reduced stage may lose, at calibration, against the lists.
        cosine_slack: Sparse-vector cosine it may lose likewise.
        reduced_batch: Batches of up to this many queries use the reduced first stage;
            larger ones scan the lists in full, as ``ivf`` (grouped by list, each list is
            read once per batch, and gathering ``C`` full rows per query for the rescoring
            costs more than the reduced scan saves: 0.7x ``ivf`` at batch 64, 1M x 384).
        **options: Those of :class:`~asif_qdrant.anchor_index.IVFIndex` (``n_lists``,
            ``nprobe``, ``target_recall`` ...).

    Memory: the lists' full rows (``4 d`` bytes an anchor, with 15% growth room) plus
    ``4 dims`` bytes an anchor for the reduced rows.
    """

    method = "ivf-pca"
    exact = False

    def __init__(
        self,
        *,
        dims: int | None = None,
        candidates: int | None = None,
        recall_slack: float = 0.002,
        cosine_slack: float = 0.0001,
        reduced_batch: int = 8,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        owner = "IVFPCAIndex"
        self.dims = None if dims is None else check_int("dims", owner, dims, minimum=1)
        self.candidates = (
            None if candidates is None else check_int("candidates", owner, candidates, minimum=1)
        )
        self.recall_slack = check_real("recall_slack", owner, recall_slack, greater_than=-1e-12)
        self.cosine_slack = check_real("cosine_slack", owner, cosine_slack, greater_than=-1e-12)
        self.reduced_batch = check_int("reduced_batch", owner, reduced_batch, minimum=0)
        self._proj = np.zeros((0, 0), np.float32)
        self._red = np.zeros((0, 0), np.float32)
        self._cands_for: dict[int, int] = {}

    # -- the reduced rows, kept in step with the full ones ---------------------------------
    def _build(self, ids: np.ndarray, emb: np.ndarray) -> None:
        self._cands_for.clear()
        if len(emb):
            self._proj = principal_directions(emb, self.dims or max(1, emb.shape[1] // 2))
        super()._build(ids, emb)

    def _rows_changed(self, pos: np.ndarray | None) -> None:
        if not self._proj.size:
            return
        if pos is None:
            red = np.empty((len(self._vecs), self._proj.shape[1]), np.float32)
            for s in range(0, len(red), _CHUNK):
                red[s : s + _CHUNK] = self._vecs[s : s + _CHUNK] @ self._proj
            self._red = red
        elif len(pos):
            self._red[pos] = self._vecs[pos] @ self._proj

    def _after_edit(self) -> None:
        super()._after_edit()
        self._cands_for.clear()

    # -- search ----------------------------------------------------------------------------
    def _topk(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        if self._n_trained == 0:
            rows, ids, _ = self._used_rows()
            self._build(ids, rows)
        calibrated = self._calibrated_nprobe(kk)
        nprobe = self.nprobe or calibrated
        cands = min(self._n, max(kk, self.candidates or self._cands_for.get(kk, self._n)))
        full = cands >= self._n or self._proj.shape[1] >= q.shape[1]
        if full or len(q) > self.reduced_batch:
            rows, sims = self._search(q, kk, nprobe)  # nothing to gain from a first stage
            return self._ids[rows], sims
        rows, _ = self._search(q @ self._proj, cands, nprobe, vecs=self._red, cq=q, ordered=False)
        rows, sims = self._rescore(q, rows, kk)
        return self._ids[rows], sims

    def _rescore(self, q: np.ndarray, rows: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact ``float32`` similarities of the candidates; the top ``kk``, lower id on ties."""
        rows = np.sort(rows, axis=1)  # reads in storage order
        m, c = rows.shape
        sims = np.empty((m, c), np.float32)
        with single_threaded_blas():  # one gathered block per query: memory-bound
            for i in range(m):
                sims[i] = np.take(self._vecs, rows[i], axis=0) @ q[i]
        if c > kk:
            kth = -np.partition(-sims, kk - 1, axis=1)[:, kk - 1]
            r, col = np.nonzero(sims >= kth[:, None])
        else:
            r, col = np.nonzero(np.ones_like(sims, dtype=bool))
        cand = rows[r, col]
        top, top_s, _ = segmented_topk(r, cand, sims[r, col], m, kk, tie=self._ids[cand])
        return top, top_s

    # -- calibration of C ------------------------------------------------------------------
    def _calibrate_more(
        self, kk: int, q: np.ndarray, truth: np.ndarray, probed: np.ndarray, w2: np.ndarray
    ) -> None:
        """Reduced-score rank of each probed neighbour among the probed rows; pick ``C``."""
        if not self._proj.size or self._proj.shape[1] >= q.shape[1]:
            return
        cap = min(self._n, _MAX_CANDIDATES * kk)
        nprobe = self._nprobe_for[kk]
        labels = np.repeat(np.arange(len(self._cent)), np.diff(self._start))
        invalid = self._ids < 0
        q, truth, probed, w2 = (
            q[:_CALIBRATION],
            truth[:_CALIBRATION],
            probed[:_CALIBRATION],
            w2[:_CALIBRATION],
        )
        qr = q @ self._proj
        arank = np.full(truth.shape, cap, np.int64)
        for s in range(0, len(q), 8):
            cs = q[s : s + 8] @ self._cent.T
            probe = np.argpartition(-cs, min(nprobe, cs.shape[1]) - 1, axis=1)[:, :nprobe]
            scores = qr[s : s + 8] @ self._red.T
            for j in range(len(scores)):
                row = scores[j]
                in_probe = np.zeros(len(self._cent), dtype=bool)
                in_probe[probe[j]] = True
                row[invalid | ~in_probe[labels]] = -np.inf
                top = np.sort(row[np.argpartition(-row, cap - 1)[:cap]])
                t = row[truth[s + j]]
                arank[s + j] = cap - np.searchsorted(top, t, side="right")
        arank[~probed] = cap

        def quality(c: int) -> tuple[float, float]:
            found = arank < c
            return float(found.mean()), float(np.sqrt((w2 * found).sum(axis=1)).mean())

        rec_all, cos_all = quality(cap)
        lo, hi = kk, cap
        while lo < hi:  # smallest C within the slack of the probed lists' quality
            mid = (lo + hi) // 2
            rec, cos = quality(mid)
            if rec >= rec_all - self.recall_slack and cos >= cos_all - self.cosine_slack:
                hi = mid
            else:
                lo = mid + 1
        cands = int(min(self._n, math.ceil(lo * self.safety)))
        self._cands_for[kk] = cands
        rec, cos = quality(cands)
        self.calibration[kk].update(
            candidates=cands, calibration_recall=rec, calibration_cosine=cos
        )

    def memory_bytes(self) -> int:
        """Bytes held by the index (full and reduced rows with growth room, ids, centroids)."""
        return int(super().memory_bytes() + self._red.nbytes + self._proj.nbytes)

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {
            **super().describe(),
            "dims": self._proj.shape[1] if self._proj.size else self.dims or "d / 2",
            "candidates": self.candidates or dict(self._cands_for) or "calibrated",
        }
