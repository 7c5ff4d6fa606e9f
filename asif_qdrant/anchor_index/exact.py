"""Exact top-k by brute force over an in-memory ``float32`` matrix (numpy BLAS).

Two things make it faster than the streaming recipe of :func:`~asif_qdrant.relative.relative_topk`:
the normalised matrix is kept in memory (no per-call copy and normalisation of the anchors), and
the top-k selection avoids a partition of every similarity row. A small random sample of anchor
rows gives each query a threshold that is, with high probability, below its k-th best
similarity; one pass keeps only the similarities above it, and a query whose kept set is too
small (rare) is redone with a full partition. The result is exact either way.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.anchor_index import ExactIndex
    >>> index = ExactIndex().build([5, 6, 7], np.eye(3))
    >>> ids, sims = index.topk(np.array([[0.0, 1.0, 0.2]]), k=2)
    >>> ids.tolist(), [round(float(s), 3) for s in sims[0]]
    ([[6, 7]], [0.981, 0.196])
    >>> index.delete([6]), len(index)
    (1, 2)
"""

from __future__ import annotations

import math

import numpy as np

from asif_qdrant.anchor_index.base import AnchorIndex, segmented_topk, single_threaded_blas
from asif_qdrant.errors import InvalidInputError

__all__ = ["ExactIndex", "RowStore", "RowStoreIndex", "exact_topk", "sample_size"]

#: Batches of fewer queries than this, over at most SMALL_MATRIX anchor floats, run BLAS on
#: one thread: such products are too small to gain from a second thread, and spin-waiting
#: BLAS threads lose badly when the CPU is busy. Larger matrices keep every BLAS thread.
SMALL_BATCH = 8
SMALL_MATRIX = 1 << 23
#: Bytes of one block of similarities (queries x anchor rows) during a scan.
BLOCK_BYTES = 64 * 1024**2
#: The scan stops using a sampled threshold when the sample would cover this share of rows.
_SAMPLE_MAX_SHARE = 0.25


class RowStore:
    """A growable ``float32`` matrix with an id per row; deletes move the last rows into holes.

    Example:
        >>> rs = RowStore(2)
        >>> rs.append(np.array([1, 2, 3]), np.eye(3, 2, dtype=np.float32))
        >>> rs.remove(np.array([1])), rs.ids.tolist()
        (1, [3, 2])
    """

    def __init__(self, dim: int, capacity: int = 0) -> None:
        self.dim = dim
        self._vecs = np.empty((capacity, dim), dtype=np.float32)
        self._ids = np.empty(capacity, dtype=np.int64)
        self.n = 0
        self.version = 0

    @property
    def vecs(self) -> np.ndarray:
        """The used rows (a view)."""
        return self._vecs[: self.n]

    @property
    def ids(self) -> np.ndarray:
        """The ids of the used rows (a view)."""
        return self._ids[: self.n]

    @classmethod
    def adopt(cls, ids: np.ndarray, rows: np.ndarray) -> RowStore:
        """A store that takes over ``rows`` (``float32``, C-contiguous) without copying."""
        rs = cls(rows.shape[1])
        rs._vecs = np.ascontiguousarray(rows, dtype=np.float32)
        rs._ids = np.array(ids, dtype=np.int64)
        rs.n = len(rows)
        return rs

    def nbytes(self) -> int:
        """Bytes allocated (capacity included)."""
        return int(self._vecs.nbytes + self._ids.nbytes)

    def append(self, ids: np.ndarray, rows: np.ndarray, *, check: bool = True) -> None:
        """Append rows under new ids."""
        if check and self.n and np.isin(ids, self.ids).any():
            dup = int(ids[np.isin(ids, self.ids)][0])
            raise InvalidInputError(f"Anchor id {dup} is already in the index; ids must be new.")
        need = self.n + len(ids)
        if need > len(self._ids):
            cap = max(need, int(len(self._ids) * 1.25) + 16)
            vecs = np.empty((cap, self.dim), dtype=np.float32)
            vecs[: self.n] = self._vecs[: self.n]
            idb = np.empty(cap, dtype=np.int64)
            idb[: self.n] = self._ids[: self.n]
            self._vecs, self._ids = vecs, idb
        self._vecs[self.n : need] = rows
        self._ids[self.n : need] = ids
        self.n = need
        self.version += 1

    def remove(self, ids: np.ndarray) -> int:
        """Remove rows by id (unknown ids ignored); returns how many were removed."""
        hit = np.isin(self.ids, ids)
        holes = np.flatnonzero(hit)
        if len(holes) == 0:
            return 0
        new_n = self.n - len(holes)
        fill = holes[holes < new_n]
        tail = np.arange(new_n, self.n)
        src = tail[~hit[new_n:]]
        self._vecs[fill] = self._vecs[src]
        self._ids[fill] = self._ids[src]
        self.n = new_n
        self.version += 1
        return len(holes)


def _block_rows(m: int) -> int:
    """Anchor rows per block so that one block of similarities stays near BLOCK_BYTES."""
    return max(1024, BLOCK_BYTES // (4 * max(m, 1)) // 1024 * 1024)


def sample_size(n: int, kk: int) -> int:
    """Rows sampled to pick thresholds: about 32 expected hits above the k-th best."""
    return min(n, max(16384, math.ceil(32 * n / kk)))


def exact_topk(
    q: np.ndarray,
    mat: np.ndarray,
    kk: int,
    *,
    sample: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    keys: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``kk`` rows of ``mat`` for each (normalised) query row: ``(rows, sims)``.

    Args:
        q: ``(m, d)`` normalised queries.
        mat: ``(n, d)`` normalised rows.
        kk: How many per query (<= number of valid rows).
        sample: A uniform random sample of the rows of ``mat`` (``(sample_size(n, kk), d)``),
            used to pick thresholds; ``None`` draws one.
        valid: Optional boolean mask of the rows that count (others are never returned).
        keys: Optional id of each row: among rows tied at the k-th place, the lower id is
            kept (default: the lower row). Exact whenever one block of similarities holds all
            rows or the sampled threshold is used (always, for n >= 65,536 at k = 800).

    Returns:
        ``int64`` row numbers and ``float32`` similarities, ``(m, kk)``, best first.

    Example:
        >>> rows, sims = exact_topk(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), 1)
        >>> rows.tolist()
        [[0], [1]]
    """
    m = len(q)
    n = len(mat)
    valid_rows = None if valid is None else np.flatnonzero(valid)
    n_valid = n if valid_rows is None else len(valid_rows)
    s_size = sample_size(n_valid, kk)
    if sample is not None and len(sample) != s_size:
        sample = None
    use_threshold = s_size <= _SAMPLE_MAX_SHARE * n_valid
    if use_threshold and sample is None:
        rng = np.random.default_rng(n)
        pick = rng.choice(n_valid, size=s_size, replace=False)
        sample = mat[np.sort(pick if valid_rows is None else valid_rows[pick])]
    out_r = np.empty((m, kk), dtype=np.int64)
    out_s = np.empty((m, kk), dtype=np.float32)
    q_chunk = 256
    for q0 in range(0, m, q_chunk):
        qc = q[q0 : q0 + q_chunk]
        mc = len(qc)
        block = _block_rows(mc)
        if use_threshold:
            assert sample is not None
            s_sims = qc @ sample.T
            j = min(len(sample), math.ceil(1.5 * len(sample) * kk / n_valid) + 2)
            tau = -np.partition(-s_sims, j - 1, axis=1)[:, j - 1]
            del s_sims
            groups, rows, sims = [], [], []
            for a0 in range(0, n, block):
                sb = qc @ mat[a0 : a0 + block].T
                r, c = np.nonzero(sb >= tau[:, None])
                if valid is not None:
                    ok = valid[c + a0]
                    r, c = r[ok], c[ok]
                groups.append(r)
                rows.append(c + a0)
                sims.append(sb[r, c])
            g = np.concatenate(groups)
            rr = np.concatenate(rows)
            ss = np.concatenate(sims)
            top_r, top_s, counts = segmented_topk(
                g, rr, ss, mc, kk, tie=None if keys is None else keys[rr]
            )
            short = np.flatnonzero(counts < kk)
            if len(short):  # the sampled threshold was too high for these: redo them fully
                fr, fs = _partition_topk(qc[short], mat, kk, block, valid, keys)
                top_r[short], top_s[short] = fr, fs
        else:
            top_r, top_s = _partition_topk(qc, mat, kk, block, valid, keys)
        out_r[q0 : q0 + mc] = top_r
        out_s[q0 : q0 + mc] = top_s
    return out_r, out_s


def _partition_topk(
    qc: np.ndarray,
    mat: np.ndarray,
    kk: int,
    block: int,
    valid: np.ndarray | None,
    keys: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Partition-based top-k for small n (or a sampled threshold that missed).

    When one block holds every row, every row tied with the k-th similarity is a candidate
    and ties go to the lower key; across several blocks, a running merge (the reference
    recipe) keeps k per block.
    """
    mc = len(qc)
    if len(mat) <= block:
        sb = qc @ mat.T
        if valid is not None:
            sb[:, ~valid] = -np.inf
        nb = sb.shape[1]
        kth = np.partition(sb, nb - kk, axis=1)[:, nb - kk] if nb > kk else sb.min(axis=1)
        r, c = np.nonzero(sb >= kth[:, None])
        top_r, top_s, _ = segmented_topk(
            r, c, sb[r, c], mc, kk, tie=None if keys is None else keys[c]
        )
        return top_r, top_s
    best_r = np.zeros((mc, 0), dtype=np.int64)
    best_s = np.zeros((mc, 0), dtype=np.float32)
    for a0 in range(0, len(mat), block):
        sb = qc @ mat[a0 : a0 + block].T
        if valid is not None:
            sb[:, ~valid[a0 : a0 + block]] = -np.inf
        nb = sb.shape[1]
        if nb > kk:
            part = np.argpartition(sb, nb - kk, axis=1)[:, nb - kk :]
        else:
            part = np.broadcast_to(np.arange(nb), (mc, nb))
        cand_s = np.concatenate([best_s, np.take_along_axis(sb, part, axis=1)], axis=1)
        cand_r = np.concatenate([best_r, part + a0], axis=1)
        if cand_s.shape[1] > kk:
            keep = np.argpartition(cand_s, cand_s.shape[1] - kk, axis=1)[:, -kk:]
            cand_s = np.take_along_axis(cand_s, keep, axis=1)
            cand_r = np.take_along_axis(cand_r, keep, axis=1)
        best_s, best_r = cand_s, cand_r
    tie = best_r if keys is None else keys[best_r]
    order = np.lexsort((tie, -best_s), axis=1)
    return np.take_along_axis(best_r, order, axis=1), np.take_along_axis(best_s, order, axis=1)


class RowStoreIndex(AnchorIndex):
    """An anchor index whose rows live in a :class:`RowStore` (:attr:`rows`); subclasses search.

    Subclasses implement ``_topk`` (and may extend ``_build`` / ``_add`` / ``_delete``).
    """

    def __init__(self) -> None:
        super().__init__()
        #: The anchors' unit rows and ids (None before the first build).
        self.rows: RowStore | None = None

    def __len__(self) -> int:
        return 0 if self.rows is None else self.rows.n

    def _build(self, ids: np.ndarray, emb: np.ndarray) -> None:
        self.rows = RowStore.adopt(ids, emb)

    def _add(self, ids: np.ndarray, emb: np.ndarray) -> None:
        assert self.rows is not None
        self.rows.append(ids, emb)

    def _delete(self, ids: np.ndarray) -> int:
        assert self.rows is not None
        return self.rows.remove(ids)


class ExactIndex(RowStoreIndex):
    """Exact cosine top-k over an in-memory ``float32`` matrix with BLAS (numpy).

    Memory: ``4 * n * d`` bytes plus up to 25% growth room after adds.
    """

    method = "exact"
    exact = True

    def __init__(self) -> None:
        super().__init__()
        self._sample: np.ndarray | None = None
        self._sample_key: tuple[int, int] = (-1, -1)

    def _topk(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.rows is not None
        st = self.rows
        key = (st.version, sample_size(st.n, kk))
        if self._sample_key != key:  # one sample per content and k, reused across calls
            pick = np.random.default_rng(0).choice(st.n, size=key[1], replace=False)
            self._sample = st.vecs[np.sort(pick)] if key[1] <= _SAMPLE_MAX_SHARE * st.n else None
            self._sample_key = key
        small = len(q) < SMALL_BATCH and st.n * st.dim <= SMALL_MATRIX
        with single_threaded_blas(small):
            rows, sims = exact_topk(q, st.vecs, kk, sample=self._sample, keys=st.ids)
        return st.ids[rows], sims

    def memory_bytes(self) -> int:
        """Bytes held by the index."""
        extra = 0 if self._sample is None else self._sample.nbytes
        return extra + (0 if self.rows is None else self.rows.nbytes())

    @property
    def ids(self) -> np.ndarray:
        """The anchor ids held (in storage order)."""
        return np.zeros(0, np.int64) if self.rows is None else self.rows.ids.copy()
