"""Two-stage coarse-then-exact search: an inverted file of anchor lists (IVF), calibrated.

Build: spherical k-means (two levels, so that a million anchors train in seconds) splits the
anchors into ``n_lists`` lists of neighbouring rows, stored contiguously with growth room.
Search: each query ranks the list centroids (stage 1, coarse), then scores exactly, in
``float32``, every anchor of its ``nprobe`` best lists (stage 2). The queries of a batch are
grouped by list so that each list is read once per batch. The first few lists of each query
give it a threshold (its k-th best similarity so far); later lists keep only similarities
above it, so the final selection touches few candidates.

How many lists to probe is not a guess: on first use with a given ``k`` the index takes
``calibration_queries`` anchors that trained no centroid as queries (each one left out of its
own neighbours), finds at which list rank each of their exact top-k neighbours lies, and takes
the smallest ``nprobe`` whose recall@k reaches ``target_recall`` (0.995 by default) and whose
estimated sparse-vector cosine reaches ``target_cosine`` (0.9993), times a safety factor (1.1).
Adds go to the nearest list; when the anchor count has doubled or halved since training, the
next search retrains.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.anchor_index import IVFIndex
    >>> rng = np.random.default_rng(0)
    >>> centers = rng.normal(size=(20, 16))
    >>> x = centers[rng.integers(0, 20, 3000)] + 0.5 * rng.normal(size=(3000, 16))
    >>> index = IVFIndex(n_lists=30).build(np.arange(3000), x)
    >>> ids, sims = index.topk(x[:4] + 0.1, k=50)
    >>> ids.shape, bool((np.diff(sims, axis=1) <= 0).all())
    ((4, 50), True)
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from asif_qdrant.anchor_index.base import AnchorIndex, segmented_topk, single_threaded_blas
from asif_qdrant.anchor_index.exact import exact_topk
from asif_qdrant.errors import InvalidInputError, InvalidParameterError, check_int, check_real
from asif_qdrant.relative import relative_weights

__all__ = ["IVFIndex", "spherical_kmeans", "top_per_group"]

_CHUNK = 16384
#: Rows are assigned to the best list among the lists of this many most similar cells.
_ASSIGN_CELLS = 1
#: Batches up to this size are searched query by query (no grouping by list).
_ONE_BY_ONE = 2


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    """A shared thread pool of this size (created once)."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="asif-ivf")
    return _POOLS[threads]


def _assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the most similar centroid of each row (chunked GEMM)."""
    out = np.empty(len(x), dtype=np.int64)
    for s in range(0, len(x), _CHUNK):
        out[s : s + _CHUNK] = np.argmax(x[s : s + _CHUNK] @ centroids.T, axis=1)
    return out


def spherical_kmeans(
    x: np.ndarray, c: int, *, iters: int = 8, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Spherical k-means (cosine) of normalised rows: ``(c, d)`` unit centroids.

    Example:
        >>> x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
        >>> cent = spherical_kmeans(x / np.linalg.norm(x, axis=1, keepdims=True), 2,
        ...                         rng=np.random.default_rng(0))
        >>> sorted(round(float(v), 1) for v in np.abs(cent[:, 0]))
        [0.1, 1.0]
    """
    rng = rng or np.random.default_rng(0)
    n = len(x)
    c = max(1, min(c, n))
    cent = x[rng.choice(n, size=c, replace=False)].copy()
    for _ in range(iters):
        labels = _assign(x, cent)
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=c)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        nonempty = counts > 0
        sums = np.zeros_like(cent)
        if nonempty.any():
            sums[nonempty] = np.add.reduceat(x[order], starts[nonempty], axis=0)
        empty = np.flatnonzero(~nonempty)
        if len(empty):  # re-seed empty clusters with random rows
            sums[empty] = x[rng.choice(n, size=len(empty), replace=len(empty) > n)]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        cent = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return cent


def _kth_per_group(group: np.ndarray, score: np.ndarray, m: int, kk: int) -> np.ndarray:
    """The ``kk``-th largest score of each group (``-inf`` where a group has fewer)."""
    counts = np.bincount(group, minlength=m)
    tau = np.full(m, -np.inf, dtype=np.float32)
    if len(group) == 0 or counts.max() < kk:
        return tau
    order = np.argsort(group, kind="stable")
    first = np.zeros(m, dtype=np.int64)
    np.cumsum(counts[:-1], out=first[1:])
    g = group[order]
    pad = np.full((m, int(counts.max())), -np.inf, dtype=np.float32)
    pad[g, np.arange(len(g)) - first[g]] = score[order]
    kth = -np.partition(-pad, kk - 1, axis=1)[:, kk - 1]
    return np.where(counts >= kk, kth, -np.inf).astype(np.float32)


def top_per_group(
    group: np.ndarray, key: np.ndarray, score: np.ndarray, m: int, kk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group top ``kk`` of scattered candidates, in no particular order (no sort).

    Like :func:`~asif_qdrant.anchor_index.base.segmented_topk` (same padding, same counts)
    but cheaper: a partition per group instead of one sort of every candidate. Which of
    several candidates tied at the ``kk``-th place is kept is unspecified.

    Example:
        >>> keys, _, counts = top_per_group(np.array([0, 0, 1, 0]), np.array([7, 8, 9, 6]),
        ...                                 np.array([0.1, 0.9, 0.5, 0.8]), m=2, kk=2)
        >>> sorted(keys[0].tolist()), keys[1].tolist(), counts.tolist()
        ([6, 8], [9, -1], [3, 1])
    """
    counts = np.bincount(group, minlength=m) if len(group) else np.zeros(m, np.int64)
    out_k = np.full((m, kk), -1, dtype=np.int64)
    out_s = np.full((m, kk), -np.inf, dtype=np.float32)
    if len(group) == 0:
        return out_k, out_s, counts
    order = np.argsort(group, kind="stable")
    first = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    key, score = key[order], score[order]
    for g in np.flatnonzero(counts).tolist():
        a, b = int(first[g]), int(first[g + 1])
        if b - a > kk:
            part = np.argpartition(score[a:b], b - a - kk)[b - a - kk :] + a
        else:
            part = np.arange(a, b)
        out_k[g, : len(part)] = key[part]
        out_s[g, : len(part)] = score[part]
    return out_k, out_s, counts


class IVFIndex(AnchorIndex):
    """Inverted-file index: coarse centroid ranking, then exact ``float32`` scoring of lists.

    Args:
        n_lists: Number of lists; default ``round(4 * sqrt(n))`` (about 4,000 at 1M).
        nprobe: Lists scored per query; default: calibrated per ``k`` (see module doc).
        target_recall: Recall@k the calibration aims for, in (0, 1].
        calibration_queries: Anchors used as calibration queries.
        target_cosine: Mean cosine of the ASIF vectors to the exact ones (estimated from the
            weights of the neighbours found) the calibration also aims for.
        p: The ASIF exponent used for that estimate.
        safety: Factor applied to the calibrated ``nprobe`` (>= 1).
        kmeans_iters: Iterations of each k-means level.
        seed: Random seed (training sample, calibration sample).
        threads: Threads scoring lists in a batch (default: the CPU count, at most 8).
    """

    method = "ivf"
    exact = False

    def __init__(
        self,
        *,
        n_lists: int | None = None,
        nprobe: int | None = None,
        target_recall: float = 0.995,
        calibration_queries: int = 384,
        target_cosine: float = 0.9993,
        p: float = 8.0,
        safety: float = 1.1,
        kmeans_iters: int = 8,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        owner = "IVFIndex"
        self.n_lists = None if n_lists is None else check_int("n_lists", owner, n_lists, minimum=1)
        self.nprobe = None if nprobe is None else check_int("nprobe", owner, nprobe, minimum=1)
        self.target_recall = check_real("target_recall", owner, target_recall, greater_than=0)
        if self.target_recall > 1:
            raise InvalidParameterError(
                f"The 'target_recall' parameter of IVFIndex must be in (0, 1]. "
                f"Got {target_recall!r} instead."
            )
        self.calibration_queries = check_int(
            "calibration_queries", owner, calibration_queries, minimum=1
        )
        self.target_cosine = check_real("target_cosine", owner, target_cosine, greater_than=0)
        self.p = check_real("p", owner, p, greater_than=0)
        self.safety = check_real("safety", owner, safety, greater_than=0)
        self.kmeans_iters = check_int("kmeans_iters", owner, kmeans_iters, minimum=1)
        self.seed = check_int("seed", owner, seed, minimum=0)
        self.threads = (
            min(8, os.cpu_count() or 1)
            if threads is None
            else check_int("threads", owner, threads, minimum=1)
        )
        self._n = 0
        self._n_trained = 0
        self._cent = np.zeros((0, 0), np.float32)
        self._vecs = np.zeros((0, 0), np.float32)
        self._ids = np.zeros(0, np.int64)
        self._start = np.zeros(1, np.int64)
        self._count = np.zeros(0, np.int64)
        self._nprobe_for: dict[int, int] = {}
        self._trained_rows = np.zeros(0, dtype=bool)
        self._held_out_ids = np.zeros(0, dtype=np.int64)
        self.calibration: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return self._n

    # -- layout ----------------------------------------------------------------------------
    @property
    def lists(self) -> int:
        """Number of lists (centroids)."""
        return len(self._cent)

    def _layout(self, labels: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> None:
        """Store rows grouped by list, each list with growth room."""
        c = len(self._cent)
        counts = np.bincount(labels, minlength=c).astype(np.int64)
        caps = counts + np.ceil(counts * 0.15).astype(np.int64) + 4
        start = np.zeros(c + 1, dtype=np.int64)
        np.cumsum(caps, out=start[1:])
        order = np.argsort(labels, kind="stable")
        first = np.zeros(c, dtype=np.int64)
        np.cumsum(counts[:-1], out=first[1:])
        vecs = np.zeros((int(start[-1]), rows.shape[1]), dtype=np.float32)
        idb = np.full(int(start[-1]), -1, dtype=np.int64)
        for s in range(0, len(order), 65536):  # chunked: no full-size temporary
            o = order[s : s + 65536]
            lab = labels[o]
            dest = start[lab] + (np.arange(s, s + len(o)) - first[lab])
            vecs[dest] = rows[o]
            idb[dest] = ids[o]
        self._vecs, self._ids, self._start, self._count = vecs, idb, start, counts
        self._n = int(counts.sum())
        self._rows_changed(None)

    def _rows_changed(self, pos: np.ndarray | None) -> None:
        """Hook: the rows at these storage positions (``None``: all) were written."""

    def _used_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, ids, labels) of every stored anchor (copies)."""
        valid = self._ids >= 0
        labels = np.repeat(np.arange(len(self._cent)), np.diff(self._start))
        return self._vecs[valid], self._ids[valid], labels[valid]

    # -- building --------------------------------------------------------------------------
    def _train(self, x: np.ndarray) -> np.ndarray:
        """Two-level spherical k-means; returns the label of each row of ``x``.

        ``sqrt(n_lists)`` coarse cells are trained on a sample, then each cell's own lists on
        a sample of its rows. Every row then goes to its most similar list among the lists of
        its ``_ASSIGN_CELLS`` most similar cells (not only its own cell: rows near a cell's
        border would otherwise land in a poor list).
        """
        n = len(x)
        rng = np.random.default_rng(self.seed)
        c_total = self.n_lists or max(1, round(4 * math.sqrt(n)))
        c_total = max(1, min(c_total, n))
        c1 = max(1, min(round(math.sqrt(c_total)), n))
        used = np.zeros(n, dtype=bool)  # rows that trained a centroid (not calibration queries)
        pick = rng.choice(n, size=min(n, 256 * c1), replace=False)
        used[pick] = True
        coarse = spherical_kmeans(x[pick], c1, iters=self.kmeans_iters, rng=rng)
        c1 = len(coarse)
        cells = min(_ASSIGN_CELLS, c1)
        top_cells = np.empty((n, cells), dtype=np.int64)
        own = np.empty(n, dtype=np.int64)  # each row's most similar cell: trains its lists
        for s in range(0, n, _CHUNK):
            sims = x[s : s + _CHUNK] @ coarse.T
            own[s : s + _CHUNK] = np.argmax(sims, axis=1)
            if cells < c1:
                top_cells[s : s + _CHUNK] = np.argpartition(-sims, cells - 1, axis=1)[:, :cells]
            else:
                top_cells[s : s + _CHUNK] = np.arange(c1)
        cents, offsets = [], np.zeros(c1 + 1, dtype=np.int64)
        for j in range(c1):
            members = np.flatnonzero(own == j)
            if len(members) == 0:
                offsets[j + 1] = offsets[j]
                cents.append(np.zeros((0, x.shape[1]), np.float32))
                continue
            cj = max(1, min(len(members), round(c_total * len(members) / n)))
            fit_rows = members[
                rng.choice(len(members), size=min(len(members), 64 * cj), replace=False)
            ]
            used[fit_rows] = True
            fit_on = x[fit_rows]
            cent = spherical_kmeans(fit_on, cj, iters=self.kmeans_iters, rng=rng)
            cents.append(cent)
            offsets[j + 1] = offsets[j] + len(cent)
        self._cent = np.concatenate(cents).astype(np.float32)
        best = np.full(n, -np.inf, dtype=np.float32)
        labels = np.zeros(n, dtype=np.int64)
        for j in range(c1):
            a, b = int(offsets[j]), int(offsets[j + 1])
            if a == b:
                continue
            rows = np.flatnonzero((top_cells == j).any(axis=1))
            for s in range(0, len(rows), _CHUNK):
                r = rows[s : s + _CHUNK]
                sims = x[r] @ self._cent[a:b].T
                arg = np.argmax(sims, axis=1)
                val = sims[np.arange(len(r)), arg]
                better = val > best[r]
                best[r[better]] = val[better]
                labels[r[better]] = arg[better] + a
        self._trained_rows = used
        return labels

    def _build(self, ids: np.ndarray, emb: np.ndarray) -> None:
        self.dim = emb.shape[1]
        self._nprobe_for.clear()
        self.calibration.clear()
        if len(emb) == 0:
            self._n = 0
            return
        labels = self._train(emb)
        self._held_out_ids = ids[~self._trained_rows]  # calibration queries come from these
        self._layout(labels, emb, ids)
        self._n_trained = self._n

    def _add(self, ids: np.ndarray, emb: np.ndarray) -> None:
        if self._n and np.isin(ids, self._ids).any():
            dup = int(ids[np.isin(ids, self._ids)][0])
            raise InvalidInputError(f"Anchor id {dup} is already in the index; ids must be new.")
        if len(self._cent) == 0:
            self._build(ids, emb)
            return
        labels = _assign(emb, self._cent)
        need = np.bincount(labels, minlength=len(self._cent))
        room = np.diff(self._start) - self._count
        if (need > room).any():  # some list is full: lay everything out again
            rows, old_ids, old_labels = self._used_rows()
            self._layout(
                np.concatenate([old_labels, labels]),
                np.concatenate([rows, emb]),
                np.concatenate([old_ids, ids]),
            )
        else:
            order = np.argsort(labels, kind="stable")
            lab = labels[order]
            first = np.searchsorted(lab, lab, side="left")
            dest = self._start[lab] + self._count[lab] + (np.arange(len(lab)) - first)
            self._vecs[dest] = emb[order]
            self._ids[dest] = ids[order]
            self._rows_changed(dest)
            self._count += need
            self._n += len(ids)
        self._after_edit()

    def _delete(self, ids: np.ndarray) -> int:
        pos = np.flatnonzero(np.isin(self._ids, ids))
        if len(pos) == 0:
            return 0
        lists = np.searchsorted(self._start, pos, side="right") - 1
        for lst in np.unique(lists):
            holes = pos[lists == lst]
            a0, cnt = int(self._start[lst]), int(self._count[lst])
            new_cnt = cnt - len(holes)
            used_hole = np.zeros(cnt, dtype=bool)
            used_hole[holes - a0] = True
            fill = holes[holes - a0 < new_cnt]
            tail = np.arange(a0 + new_cnt, a0 + cnt)
            src = tail[~used_hole[new_cnt:cnt]]
            self._vecs[fill] = self._vecs[src]
            self._ids[fill] = self._ids[src]
            self._rows_changed(fill)
            self._ids[a0 + new_cnt : a0 + cnt] = -1
            self._count[lst] = new_cnt
        self._n -= len(pos)
        self._after_edit()
        return len(pos)

    def _after_edit(self) -> None:
        if self._n_trained and not (self._n_trained / 2 <= self._n <= 2 * self._n_trained):
            self._n_trained = 0  # retrain at the next search
        self._nprobe_for.clear()

    # -- search ----------------------------------------------------------------------------
    def _scan(
        self,
        q: np.ndarray,
        qi: np.ndarray,
        li: np.ndarray,
        tau: np.ndarray | None,
        vecs: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score (query, list) pairs, grouped by list; keep sims >= tau of the query.

        Each list is read once for all the queries that probe it: one small
        ``(list rows x queries)`` product. Products this small gain nothing from BLAS
        threads, so BLAS runs single-threaded and the lists are shared out over
        ``self.threads`` Python threads instead (BLAS releases the GIL).
        """
        order = np.argsort(li, kind="stable")
        li, qi = li[order], qi[order]
        cut = np.flatnonzero(np.diff(li)) + 1
        bounds = np.concatenate([[0], cut, [len(li)]])
        spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
        start, count = self._start, self._count

        def work(part: list[tuple[int, int]]) -> tuple[list[Any], list[Any], list[Any]]:
            groups, rows, sims = [], [], []
            for s, e in part:
                lst = li[s]
                cnt = int(count[lst])
                if cnt == 0:
                    continue
                a0 = int(start[lst])
                qs = qi[s:e]
                blk = vecs[a0 : a0 + cnt] @ q[qs].T  # (cnt, len(qs))
                if tau is None:
                    groups.append(np.tile(qs, cnt))
                    rows.append(np.repeat(np.arange(a0, a0 + cnt), len(qs)))
                    sims.append(blk.ravel())
                else:
                    r, c = np.nonzero(blk >= tau[qs])
                    groups.append(qs[c])
                    rows.append(r + a0)
                    sims.append(blk[r, c])
            return groups, rows, sims

        threads = self.threads if len(spans) >= 64 else 1
        with single_threaded_blas():
            if threads > 1:
                parts = [spans[i::threads] for i in range(threads)]
                results = list(_pool(threads).map(work, parts))
            else:
                results = [work(spans)]
        groups = [g for res in results for g in res[0]]
        if not groups:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        rows = [r for res in results for r in res[1]]
        sims = [x for res in results for x in res[2]]
        return np.concatenate(groups), np.concatenate(rows), np.concatenate(sims)

    def _search_one(
        self, q: np.ndarray, kk: int, probe: np.ndarray, vecs: np.ndarray, ordered: bool = True
    ) -> tuple[Any, Any]:
        """One query: a product per run of probed lists, then one partition (no grouping).

        Lists of one coarse cell are stored side by side, so a query's probed lists form
        runs of consecutive lists; each run is one product (its growth room, ``id -1``,
        left out after), far fewer calls than one per list.
        """
        start, count, ids = self._start, self._count, self._ids
        lists = np.sort(probe)
        cut = np.flatnonzero(np.diff(lists) != 1) + 1
        firsts = lists[np.concatenate([[0], cut])].tolist()
        lasts = lists[np.concatenate([cut - 1, [len(lists) - 1]])].tolist()
        parts, spans = [], []
        with single_threaded_blas():
            for a, b in zip(firsts, lasts, strict=True):
                a0, a1 = int(start[a]), int(start[b] + count[b])
                if a1 > a0:
                    parts.append(vecs[a0:a1] @ q)
                    spans.append((a0, a1))
        if not parts:
            return None, None
        r = np.concatenate([np.arange(a0, a1) for a0, a1 in spans])
        used = ids[r] >= 0  # growth room inside a run holds no anchor
        sims, r = np.concatenate(parts)[used], r[used]
        if len(sims) < kk:
            return None, None
        if len(sims) > kk:
            part = np.argpartition(sims, len(sims) - kk)[len(sims) - kk :]
            sims, r = sims[part], r[part]
        if not ordered:
            return r, sims
        order = np.lexsort((r, -sims))
        return r[order], sims[order]

    def _search(
        self,
        q: np.ndarray,
        kk: int,
        nprobe: int,
        *,
        vecs: np.ndarray | None = None,
        cq: np.ndarray | None = None,
        ordered: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``kk`` rows of ``vecs`` (default: the anchors) in the ``nprobe`` best lists.

        ``q`` is in the space of ``vecs``; ``cq`` (default ``q``) ranks the centroids;
        ``ordered=False`` returns each query's rows in no particular order (cheaper).
        """
        vecs = self._vecs if vecs is None else vecs
        m = len(q)
        c = len(self._cent)
        nprobe = min(nprobe, c)
        with single_threaded_blas(m < 8):  # a few rows: spinning BLAS threads only cost
            cs = (q if cq is None else cq) @ self._cent.T
        if nprobe < c:
            probe = np.argpartition(-cs, nprobe - 1, axis=1)[:, :nprobe]
        else:
            probe = np.broadcast_to(np.arange(c), (m, c)).copy()
        probe = np.take_along_axis(probe, np.argsort(-np.take_along_axis(cs, probe, 1), 1), 1)
        if m <= _ONE_BY_ONE:
            out_r = np.empty((m, kk), np.int64)
            out_s = np.empty((m, kk), np.float32)
            for i in range(m):
                r, s = self._search_one(q[i], kk, probe[i], vecs, ordered)
                if r is None:  # the probed lists held fewer than k anchors: exact search
                    r, s = self._exact(q[i : i + 1], kk, vecs)
                out_r[i], out_s[i] = r, s
            return out_r, out_s
        # Stage 2a: the closest lists of each query, until they hold ~2k rows on average.
        avg = max(1.0, self._n / c)
        n_seed = int(min(nprobe, max(1, math.ceil(2 * kk / avg))))
        rows_q = np.repeat(np.arange(m), n_seed)
        g1, r1, s1 = self._scan(q, rows_q, probe[:, :n_seed].ravel(), None, vecs)
        tau = _kth_per_group(g1, s1, m, kk)
        keep = s1 >= tau[g1]
        g1, r1, s1 = g1[keep], r1[keep], s1[keep]
        # Stage 2b: the other probed lists, keeping only what beats the threshold.
        if nprobe > n_seed:
            rows_q = np.repeat(np.arange(m), nprobe - n_seed)
            g2, r2, s2 = self._scan(q, rows_q, probe[:, n_seed:].ravel(), tau, vecs)
            g1 = np.concatenate([g1, g2])
            r1 = np.concatenate([r1, r2])
            s1 = np.concatenate([s1, s2])
        select = segmented_topk if ordered else top_per_group
        top_r, top_s, counts = select(g1, r1, s1, m, kk)
        short = np.flatnonzero(counts < kk)
        if len(short):  # the probed lists held fewer than k anchors: exact search
            top_r[short], top_s[short] = self._exact(q[short], kk, vecs)
        return top_r, top_s

    def _exact(
        self, q: np.ndarray, kk: int, vecs: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over every stored row of ``vecs`` (the fallback)."""
        vecs = self._vecs if vecs is None else vecs
        return exact_topk(q, vecs, kk, valid=self._ids >= 0)

    def _topk(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        if self._n_trained == 0:
            rows, ids, _ = self._used_rows()
            self._build(ids, rows)
        nprobe = self.nprobe or self._calibrated_nprobe(kk)
        rows, sims = self._search(q, kk, nprobe)
        return self._ids[rows], sims

    def _calibrated_nprobe(self, kk: int) -> int:
        got = self._nprobe_for.get(kk)
        if got is not None:
            return got
        c = len(self._cent)
        rng = np.random.default_rng(self.seed + 1)
        valid = np.flatnonzero(self._ids >= 0)
        if self._n <= kk + 1 or c == 1:
            self._nprobe_for[kk] = c
            return c
        # Queries: anchors that trained no centroid (like new queries, they did not shape
        # the lists), each one's own row left out of its neighbours.
        fresh = valid[np.isin(self._ids[valid], self._held_out_ids)]
        pool = fresh if len(fresh) >= self.calibration_queries else valid
        pick = rng.choice(pool, size=min(self.calibration_queries, len(pool)), replace=False)
        q = self._vecs[pick]
        mask = self._ids >= 0
        rows, sims = exact_topk(q, self._vecs, kk + 1, valid=mask)
        # Leave one out: the query itself is not one of its neighbours.
        not_self = rows != pick[:, None]
        truth = np.array([r[ns][:kk] for r, ns in zip(rows, not_self, strict=True)])
        t_sims = np.array([x[ns][:kk] for x, ns in zip(sims, not_self, strict=True)])
        lists = np.searchsorted(self._start, truth, side="right") - 1
        order = np.argsort(-(q @ self._cent.T), axis=1)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(c)[None, :].repeat(len(q), 0), axis=1)
        found_at = np.take_along_axis(rank, lists, axis=1)  # list rank holding each neighbour
        need = np.sort(found_at.ravel())
        # recall(nprobe) = share of neighbours whose list rank < nprobe
        idx = min(len(need) - 1, max(0, math.ceil(self.target_recall * len(need)) - 1))
        base = int(need[idx]) + 1
        # The sparse vector's cosine to the exact one is about the norm of the ASIF weights of
        # the neighbours found (the replacements at the k-th place weigh little): the top
        # neighbours matter most. Probe until its mean reaches target_cosine too.
        w2 = relative_weights(t_sims, self.p) ** 2

        def cosine(nprobe: int) -> float:
            return float(np.sqrt((w2 * (found_at < nprobe)).sum(axis=1)).mean())

        lo, hi = base, c
        if cosine(lo) < self.target_cosine:
            while lo < hi:  # smallest nprobe whose cosine estimate reaches the target
                mid = (lo + hi) // 2
                if cosine(mid) >= self.target_cosine:
                    hi = mid
                else:
                    lo = mid + 1
        at_target = lo
        nprobe = int(min(c, max(1, math.ceil(at_target * self.safety))))
        self._nprobe_for[kk] = nprobe
        self.calibration[kk] = {
            "nprobe_at_target_recall": base,
            "nprobe_at_targets": at_target,
            "nprobe": nprobe,
            "calibration_recall": float((found_at < nprobe).mean()),
            "calibration_cosine": cosine(nprobe),
            "queries": len(q),
        }
        self._calibrate_more(kk, q, truth, found_at < nprobe, w2)
        return nprobe

    def _calibrate_more(
        self, kk: int, q: np.ndarray, truth: np.ndarray, probed: np.ndarray, w2: np.ndarray
    ) -> None:
        """Hook: more calibration on the same queries.

        Args:
            kk: The k calibrated for.
            q: The calibration queries (unit rows).
            truth: ``(len(q), kk)`` storage rows of their exact top-k (leave-one-out).
            probed: Whether each of those lies in a list the calibrated ``nprobe`` scans.
            w2: The squared ASIF weight of each of them.
        """

    def memory_bytes(self) -> int:
        """Bytes held by the index (lists with growth room, ids, centroids)."""
        return int(self._vecs.nbytes + self._ids.nbytes + self._cent.nbytes)

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {
            **super().describe(),
            "lists": self.lists,
            "nprobe": self.nprobe if self.nprobe else dict(self._nprobe_for) or "calibrated",
            "target_recall": self.target_recall,
        }
