"""The :class:`AnchorIndex` interface, shared validation, and the quality metrics.

An anchor index holds the L2-normalised anchor embeddings of one modality under their anchor
ids and answers one question fast: the ``k`` anchors most similar (cosine) to each query, with
their similarities. Everything ASIF needs on top of that (clamp, power ``p``, normalise) is
:func:`relative_vectors`.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.anchor_index import ExactIndex, relative_vectors
    >>> rng = np.random.default_rng(0)
    >>> index = ExactIndex().build(np.arange(100), rng.normal(size=(100, 8)))
    >>> ids, sims = index.topk(rng.normal(size=(2, 8)), k=5)
    >>> ids.shape, sims.dtype
    ((2, 5), dtype('float32'))
    >>> vec = relative_vectors(index, rng.normal(size=(1, 8)), k=5, p=8.0)[0]
    >>> len(vec) <= 5, vec.indices.dtype
    (True, dtype('uint64'))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np

from asif_qdrant.errors import (
    AnchorSetError,
    InvalidInputError,
    check_int,
    check_matrix,
)
from asif_qdrant.relative import (
    Power,
    check_power,
    l2_normalize,
    relative_from_topk,
    sparse_rows,
)
from asif_qdrant.types import SparseVector

__all__ = [
    "TIE",
    "TIE_EXTRA",
    "AnchorIndex",
    "normalize_rows",
    "recall_at_k",
    "relative_search",
    "relative_vectors",
    "segmented_topk",
    "single_threaded_blas",
    "sparse_cosine",
]


def as_ids(ids: Any, owner: str) -> np.ndarray:
    """Validate anchor ids: a 1-D array of distinct integers >= 0 (``int64``).

    Example:
        >>> as_ids([3, 1, 2], "demo").tolist()
        [3, 1, 2]
    """
    try:
        arr = np.asarray(ids)
    except Exception as e:  # ragged lists and the like
        raise InvalidInputError(f"The ids given to {owner} must be a 1-D integer array.") from e
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(
            f"The ids given to {owner} must be a 1-D array of integers. "
            f"Got shape {arr.shape} of dtype {arr.dtype}."
        )
    if (arr < 0).any():
        raise InvalidInputError(
            f"The ids given to {owner} must be >= 0. Got {int(arr[arr < 0][0])}."
        )
    arr = arr.astype(np.int64, copy=False)
    if np.unique(arr).size != arr.size:
        raise InvalidInputError(f"The ids given to {owner} must be distinct. Got duplicates.")
    return arr


def _rows(x: Any, what: str, owner: str, dim: int | None) -> np.ndarray:
    text = None if dim is None else f"dim {dim} (the index's)"
    return check_matrix(x, what, owner=owner, dim=dim, dim_text=text, dtype=np.float32)


def normalize_rows(x: np.ndarray, *, chunk: int = 65536) -> np.ndarray:
    """A unit-norm ``float32`` copy of ``x``, made in chunks (no full-size temporaries).

    Example:
        >>> normalize_rows(np.array([[3.0, 4.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    out = np.empty(x.shape, dtype=np.float32)
    for s in range(0, len(x), chunk):
        out[s : s + chunk] = l2_normalize(x[s : s + chunk])
    return out


def segmented_topk(
    group: np.ndarray,
    key: np.ndarray,
    score: np.ndarray,
    m: int,
    kk: int,
    *,
    tie: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group top ``kk`` of scattered candidates, best first, ties by the lower ``tie``.

    Args:
        group: The query row of each candidate (``0 <= group < m``).
        key: The candidate's id (or row): what is returned.
        score: The candidate's similarity.
        m: Number of groups (query rows).
        kk: How many to keep per group.
        tie: Breaks ties of equal scores (lower first); default ``key``.

    Returns:
        ``(keys, scores, counts)``: ``(m, kk)`` arrays padded with ``-1`` / ``-inf`` where a
        group has fewer than ``kk`` candidates, and the number of candidates of each group.

    Example:
        >>> keys, scores, counts = segmented_topk(
        ...     np.array([0, 0, 1, 0]), np.array([7, 8, 9, 6]),
        ...     np.array([0.1, 0.9, 0.5, 0.9]), m=2, kk=2)
        >>> keys.tolist(), counts.tolist()
        ([[6, 8], [9, -1]], [3, 1])
    """
    out_k = np.full((m, kk), -1, dtype=np.int64)
    out_s = np.full((m, kk), -np.inf, dtype=np.float32)
    counts = np.bincount(group, minlength=m) if len(group) else np.zeros(m, np.int64)
    if len(group) == 0:
        return out_k, out_s, counts
    order = np.lexsort((key if tie is None else tie, -score, group))
    g = group[order]
    starts = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    rank = np.arange(len(g)) - starts[g]
    keep = rank < kk
    sel = order[keep]
    out_k[g[keep], rank[keep]] = key[sel]
    out_s[g[keep], rank[keep]] = score[sel]
    return out_k, out_s, counts


#: Similarities within this of the k-th one count as tied: they are rescored exactly
#: (the float32 BLAS rounding of one dot product is ~1e-7).
TIE = 2e-6
#: Candidates asked for beyond k, to see a tie group at the k-th place in one call.
TIE_EXTRA = 32

_CONTROLLER: Any = None


@contextmanager
def single_threaded_blas(enabled: bool = True) -> Iterator[None]:
    """Run BLAS on one thread inside the block (when ``enabled`` and threadpoolctl is there).

    A product with one or a few query rows is memory-bound: a second BLAS thread gains little,
    and OpenBLAS threads spin-wait, so on a busy CPU (the engine's own threads, other
    processes) they can make it several times slower. Costs about 3 microseconds.
    """
    global _CONTROLLER
    if not enabled:
        yield
        return
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - optional
            _CONTROLLER = False
        else:
            _CONTROLLER = ThreadpoolController()
    cm = _CONTROLLER.limit(limits=1, user_api="blas") if _CONTROLLER else nullcontext()
    with cm:
        yield


class AnchorIndex(ABC):
    """Anchor embeddings of one modality under their ids, with a fast top-k cosine search.

    Implementations: :class:`~asif_qdrant.anchor_index.ExactIndex` (numpy BLAS, exact),
    :class:`~asif_qdrant.anchor_index.IVFIndex` (coarse-then-exact two-stage search) and
    :class:`~asif_qdrant.anchor_index.TorchIndex` (torch, GPU when present). The benchmarks
    add quantized and Qdrant-engine indexes (``benchmarks/indexes``), not shipped.

    Rows are L2-normalised on the way in, queries too, so similarities are cosines.
    """

    #: The method name accepted by :func:`~asif_qdrant.anchor_index.make_index`.
    method: str = "abstract"
    #: Whether :meth:`topk` returns the exact top-k (ties aside).
    exact: bool = False

    def __init__(self) -> None:
        self.dim: int | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def build(self, ids: Any, embeddings: Any) -> AnchorIndex:
        """Replace the content with these anchors; returns ``self`` (for chaining).

        Args:
            ids: ``(n,)`` distinct anchor ids (integers >= 0).
            embeddings: ``(n, d)`` anchor embeddings (any norms).
        """
        owner = f"{type(self).__name__}.build"
        ids_ = as_ids(ids, owner)
        emb = check_matrix(embeddings, "embeddings", owner=owner, dtype=np.float32)
        if len(ids_) != len(emb):
            raise InvalidInputError(
                f"{owner} needs one id per embedding row. Got {len(ids_)} ids and {len(emb)} rows."
            )
        self.dim = int(emb.shape[1])
        self._build(ids_, normalize_rows(emb))
        return self

    def build_unit(self, ids: np.ndarray, rows: np.ndarray) -> AnchorIndex:
        """Replace the content with rows that are unit ``float32`` already; returns ``self``.

        Unlike :meth:`build`, no normalised copy is made: an index that scans rows in place
        (``exact``; ``torch`` on the CPU) keeps ``rows`` itself, which may be a memory-mapped
        file, and one that lays rows out its own way (``ivf``) copies them once.

        Example:
            >>> from asif_qdrant.anchor_index import ExactIndex
            >>> rows = np.eye(2, dtype=np.float32)
            >>> ExactIndex().build_unit(np.array([4, 9]), rows).topk(rows[1:], k=1)[0].tolist()
            [[9]]
        """
        owner = f"{type(self).__name__}.build_unit"
        ids_ = as_ids(ids, owner)
        if rows.dtype != np.float32 or rows.ndim != 2 or len(rows) != len(ids_):
            raise InvalidInputError(
                f"{owner} needs one float32 row per id. Got {len(ids_)} ids and rows of shape "
                f"{rows.shape} ({rows.dtype})."
            )
        self.dim = int(rows.shape[1])
        self._build(ids_, rows)
        return self

    def add(self, ids: Any, embeddings: Any) -> None:
        """Add anchors (ids must be new)."""
        owner = f"{type(self).__name__}.add"
        ids_ = as_ids(ids, owner)
        emb = _rows(embeddings, "embeddings", owner, self.dim)
        if len(ids_) != len(emb):
            raise InvalidInputError(
                f"{owner} needs one id per embedding row. Got {len(ids_)} ids and {len(emb)} rows."
            )
        if len(ids_) == 0:
            return
        if self.dim is None:
            self.dim = int(emb.shape[1])
            self._build(ids_, normalize_rows(emb))
            return
        self._add(ids_, normalize_rows(emb))

    def delete(self, ids: Any) -> int:
        """Delete anchors by id (unknown ids are ignored); returns how many were deleted."""
        ids_ = as_ids(np.unique(np.asarray(ids, dtype=np.int64)), f"{type(self).__name__}.delete")
        if len(ids_) == 0 or len(self) == 0:
            return 0
        return int(self._delete(ids_))

    def topk(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar anchors of each query.

        Args:
            queries: ``(m, d)`` query embeddings (any norms).
            k: How many anchors per query, >= 1; ``min(k, len(self))`` are returned.

        Returns:
            ``(ids, sims)``: ``int64`` anchor ids and ``float32`` cosine similarities, both
            ``(m, min(k, n))``, each row sorted by decreasing similarity.

        Raises:
            AnchorSetError: If the index is empty.
        """
        owner = f"{type(self).__name__}.topk"
        k = check_int("k", owner, k, minimum=1)
        if len(self) == 0:
            raise AnchorSetError(f"{owner}: the index holds no anchors; add some first.")
        q = _rows(queries, "queries", owner, self.dim)
        kk = min(k, len(self))
        if len(q) == 0:
            return np.zeros((0, kk), np.int64), np.zeros((0, kk), np.float32)
        return self._topk(normalize_rows(q), kk)

    def close(self) -> None:  # noqa: B027 - optional hook, most indexes hold only memory
        """Release resources (files, devices); the index cannot be used afterwards."""

    def __enter__(self) -> AnchorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """The method and its settings (for logs and benchmark tables)."""
        return {"method": self.method, "n": len(self), "dim": self.dim}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "method")
        return f"{type(self).__name__}({args})"

    # -- to implement --------------------------------------------------------------------
    @abstractmethod
    def __len__(self) -> int:
        """Number of anchors held."""

    @abstractmethod
    def _build(self, ids: np.ndarray, emb: np.ndarray) -> None:
        """Replace the content (``emb`` is normalised ``float32``)."""

    @abstractmethod
    def _add(self, ids: np.ndarray, emb: np.ndarray) -> None:
        """Add normalised rows under new ids."""

    @abstractmethod
    def _delete(self, ids: np.ndarray) -> int:
        """Delete by id; return how many were found."""

    @abstractmethod
    def _topk(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``kk`` of normalised queries (``1 <= kk <= len(self)``)."""


def relative_search(
    index: AnchorIndex,
    queries: Any,
    k: int,
    p: Power = 8.0,
    *,
    rescore: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[list[SparseVector], np.ndarray]:
    """ASIF relative vectors of ``queries`` over the anchors of ``index``, ties made exact.

    The index returns ``k + TIE_EXTRA`` candidates per query; the recipe is
    :func:`asif_qdrant.relative.relative_from_topk` (the one every path uses). BLAS rounds a
    dot product differently with a row's place in the matrix, so equal anchors can get
    similarities a few float32 steps apart. For the rare query whose k-th similarity has
    near-ties (within :data:`TIE`) the search is widened until the tie group ends, and, with
    ``rescore``, the tied anchors are rescored exactly (float64), so that equal anchors tie
    exactly and the lower id wins, as in the engine path.

    Args:
        index: The anchor index.
        queries: ``(m, d)`` query embeddings.
        k: Anchors kept per vector, >= 1.
        p: The exponent, > 0, or a :class:`~asif_qdrant.relative.Spread`.
        rescore: ``rescore(ids, query) -> float64 similarities`` of one query with some
            anchors (optional).

    Returns:
        ``(vectors, boundary)``: one sparse vector per query (anchors of weight 0 left out)
        and each query's boundary (see :func:`~asif_qdrant.relative.relative_from_topk`).

    Example:
        >>> from asif_qdrant.anchor_index import ExactIndex
        >>> index = ExactIndex().build([10, 11, 12], np.eye(3))
        >>> vecs, boundary = relative_search(index, np.array([[1.0, 0.5, 0.0]]), k=2, p=1.0)
        >>> vecs[0].indices.tolist(), [round(float(b), 3) for b in boundary]
        ([10, 11], [0.447])
    """
    k = check_int("k", "relative_search", k, minimum=1)
    p = check_power("p", "relative_search", p)
    n = len(index)
    m = len(queries)
    boundary = np.zeros(m, np.float32)
    if n == 0:
        empty = SparseVector(np.zeros(0, np.uint64), np.zeros(0, np.float32))
        return [empty for _ in range(m)], boundary
    if m == 0:
        return [], boundary
    ids, found = index.topk(queries, min(k + TIE_EXTRA, n))
    sims = found.astype(np.float64)
    if sims.shape[1] > k:
        # Rows whose tie group at the k-th place may go on past the candidates: one wider
        # search for all of them, doubled until every group has ended.
        wide = np.flatnonzero(_tie_open(sims, k, n))
        while len(wide):
            width = min(2 * sims.shape[1], n)
            more, more_sims = index.topk(np.asarray(queries)[wide], width)
            ids = _pad_columns(ids, width, -1)
            sims = _pad_columns(sims, width, -np.inf)
            ids[wide], sims[wide] = more, more_sims
            wide = wide[_tie_open(sims[wide], k, n)]
        if rescore is not None:  # the tied anchors that straddle the cut: exact similarities
            for row in np.flatnonzero(np.abs(sims[:, k] - sims[:, k - 1]) <= TIE).tolist():
                band = np.flatnonzero(np.abs(sims[row] - sims[row, k - 1]) <= TIE)
                if len(band) > 1 and band.min() < k <= band.max():
                    sims[row, band] = rescore(ids[row, band], np.asarray(queries[row]))
    kept, weights, boundary = relative_from_topk(ids, sims, k, p)
    return sparse_rows(kept, weights), boundary


def _tie_open(sims: np.ndarray, k: int, n: int) -> np.ndarray:
    """Rows whose last candidate is still within TIE of the k-th (more anchors may tie)."""
    last = sims[:, -1]
    return (sims.shape[1] < n) & np.isfinite(last) & (last >= sims[:, k - 1] - TIE)


def _pad_columns(x: np.ndarray, width: int, fill: float) -> np.ndarray:
    """``x`` widened to ``width`` columns with ``fill`` (unchanged when wide enough)."""
    if x.shape[1] >= width:
        return x
    out = np.full((len(x), width), fill, dtype=x.dtype)
    out[:, : x.shape[1]] = x
    return out


def relative_vectors(
    index: AnchorIndex, embeddings: Any, k: int, p: Power = 8.0
) -> list[SparseVector]:
    """ASIF relative vectors of ``embeddings`` over the anchors of ``index``.

    The index's top ``k`` through :func:`asif_qdrant.relative.relative_from_topk` (clamped
    at 0, raised to ``p``, L2-normalised, ties by the lower id; anchors of weight 0 left
    out), as :func:`~asif_qdrant.relative.relative_topk` does on a plain matrix.
    :func:`relative_search` adds the exact treatment of near-ties that the model uses.

    Example:
        >>> from asif_qdrant.anchor_index import ExactIndex
        >>> index = ExactIndex().build([10, 11, 12], np.eye(3))
        >>> v = relative_vectors(index, np.array([[1.0, 0.5, 0.0]]), k=2, p=1.0)[0]
        >>> v.indices.tolist(), [round(float(x), 3) for x in v.values]
        ([10, 11], [0.894, 0.447])
    """
    k = check_int("k", "relative_vectors", k, minimum=1)
    p = check_power("p", "relative_vectors", p)
    ids, sims = index.topk(embeddings, k)
    kept, weights, _ = relative_from_topk(ids, sims, k, p)
    return sparse_rows(kept, weights)


def recall_at_k(true_ids: np.ndarray, found_ids: np.ndarray) -> np.ndarray:
    """Per-query recall: the fraction of each row of ``true_ids`` found in ``found_ids``.

    Example:
        >>> recall_at_k(np.array([[1, 2, 3, 4]]), np.array([[4, 2, 9, 1]])).tolist()
        [0.75]
    """
    true_ids = np.asarray(true_ids)
    found_ids = np.asarray(found_ids)
    out = np.empty(len(true_ids), dtype=np.float64)
    for i, (t, f) in enumerate(zip(true_ids, found_ids, strict=True)):
        t = t[t >= 0]
        out[i] = np.isin(t, f).mean() if len(t) else 1.0
    return out


def sparse_cosine(
    ids_a: np.ndarray, w_a: np.ndarray, ids_b: np.ndarray, w_b: np.ndarray
) -> np.ndarray:
    """Per-row cosine between two sets of sparse vectors given as ``(m, k)`` ids and weights.

    Example:
        >>> a_ids, a_w = np.array([[1, 2]]), np.array([[0.6, 0.8]])
        >>> b_ids, b_w = np.array([[2, 3]]), np.array([[1.0, 0.0]])
        >>> [round(float(c), 3) for c in sparse_cosine(a_ids, a_w, b_ids, b_w)]
        [0.8]
    """
    out = np.empty(len(ids_a), dtype=np.float64)
    for i in range(len(ids_a)):
        a = np.asarray(w_a[i], np.float64)
        b = np.asarray(w_b[i], np.float64)
        common, ia, ib = np.intersect1d(ids_a[i], ids_b[i], return_indices=True)
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na == 0 or nb == 0:
            out[i] = 1.0 if na == nb else 0.0
            continue
        out[i] = float(a[ia] @ b[ib]) / (na * nb) if len(common) else 0.0
    return out
