"""Exact top-k by brute force over an in-memory ``float32`` matrix (numpy BLAS).

The normalised matrix is kept in memory (no per-call copy and normalisation of the anchors,
unlike :func:`~asif_qdrant.relative.relative_topk`) and scanned with one BLAS product per block
and ``argpartition`` per similarity row: the strongest plain numpy recipe, with ties at the
k-th place going to the lower anchor id.

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

import numpy as np

from asif_qdrant.anchor_index.base import AnchorIndex, segmented_topk, single_threaded_blas
from asif_qdrant.errors import InvalidInputError

__all__ = ["ExactIndex", "RowStore", "RowStoreIndex", "exact_topk"]

#: Batches of fewer queries than this, over at most SMALL_MATRIX anchor floats, run BLAS on
#: one thread: such products are too small to gain from a second thread, and spin-waiting
#: BLAS threads lose badly when the CPU is busy. Larger matrices keep every BLAS thread.
SMALL_BATCH = 8
SMALL_MATRIX = 1 << 23
#: Bytes of one block of similarities (queries x anchor rows) during a scan.
BLOCK_BYTES = 256 * 1024**2


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


def exact_topk(
    q: np.ndarray,
    mat: np.ndarray,
    kk: int,
    *,
    valid: np.ndarray | None = None,
    keys: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``kk`` rows of ``mat`` for each (normalised) query row: ``(rows, sims)``.

    One BLAS product per block of rows (a block of similarities is at most
    :data:`BLOCK_BYTES`: at 1M anchors a batch of 64 queries is one block), then
    ``argpartition`` of each similarity row, the numpy baseline's recipe, with the ties at the
    k-th place settled by ``keys``. (An earlier selection by a sampled threshold measured
    about half as fast: docs/PERFORMANCE.md.)

    Args:
        q: ``(m, d)`` normalised queries.
        mat: ``(n, d)`` normalised rows.
        kk: How many per query (<= number of valid rows).
        valid: Optional boolean mask of the rows that count (others are never returned).
        keys: Optional id of each row: among rows tied at the k-th place, the lower id is
            kept (default: the lower row). Exact whenever one block holds all rows.

    Returns:
        ``int64`` row numbers and ``float32`` similarities, ``(m, kk)``, best first.

    Example:
        >>> rows, sims = exact_topk(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), 1)
        >>> rows.tolist()
        [[0], [1]]
    """
    m = len(q)
    out_r = np.empty((m, kk), dtype=np.int64)
    out_s = np.empty((m, kk), dtype=np.float32)
    q_chunk = 256
    for q0 in range(0, m, q_chunk):
        qc = q[q0 : q0 + q_chunk]
        top_r, top_s = _partition_topk(qc, mat, kk, _block_rows(len(qc)), valid, keys)
        out_r[q0 : q0 + len(qc)] = top_r
        out_s[q0 : q0 + len(qc)] = top_s
    return out_r, out_s


def _block_topk(sb: np.ndarray, kk: int, keys: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Top ``kk`` columns of each row of one block of similarities, ties by the lower key.

    ``argpartition`` keeps ``kk`` per row; a row with more columns equal to its k-th value
    than were kept (a tie across the cut, rare) is settled among all of them.
    """
    mc, nb = sb.shape
    if nb > kk:
        part = np.argpartition(sb, nb - kk, axis=1)[:, nb - kk :]
    else:
        part = np.broadcast_to(np.arange(nb), (mc, nb))
    ps = np.take_along_axis(sb, part, axis=1)
    kth = ps.min(axis=1)
    tied = np.flatnonzero((sb >= kth[:, None]).sum(axis=1) > part.shape[1])
    tie = part if keys is None else keys[part]
    order = np.lexsort((tie, -ps), axis=1)
    top_r = np.take_along_axis(part, order, axis=1)
    top_s = np.take_along_axis(ps, order, axis=1)
    if len(tied):
        sub = sb[tied]
        r, c = np.nonzero(sub >= kth[tied, None])
        tr, ts, _ = segmented_topk(
            r, c, sub[r, c], len(tied), kk, tie=None if keys is None else keys[c]
        )
        top_r[tied], top_s[tied] = tr, ts
    return top_r, top_s


def _partition_topk(
    qc: np.ndarray,
    mat: np.ndarray,
    kk: int,
    block: int,
    valid: np.ndarray | None,
    keys: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Partition-based top-k: one block (exact ties), or a running merge over blocks.

    Across several blocks each keeps its ``kk`` best, so every row tied with the k-th
    similarity survives unless the tie group reaches the kk-th place (which
    :func:`~asif_qdrant.anchor_index.relative_search` widens).
    """
    mc = len(qc)
    if len(mat) <= block:
        sb = qc @ mat.T
        if valid is not None:
            sb[:, ~valid] = -np.inf
        return _block_topk(sb, kk, keys)
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

    def _topk(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.rows is not None
        st = self.rows
        small = len(q) < SMALL_BATCH and st.n * st.dim <= SMALL_MATRIX
        with single_threaded_blas(small):
            rows, sims = exact_topk(q, st.vecs, kk, keys=st.ids)
        return st.ids[rows], sims

    def memory_bytes(self) -> int:
        """Bytes held by the index."""
        return 0 if self.rows is None else self.rows.nbytes()

    @property
    def ids(self) -> np.ndarray:
        """The anchor ids held (in storage order)."""
        return np.zeros(0, np.int64) if self.rows is None else self.rows.ids.copy()
