"""The one small interface behind which all Qdrant I/O lives.

Two backends implement it: :class:`~asif_qdrant.store.edge.EdgeStore` (the embedded Qdrant
engine, ``qdrant-edge-py``, a folder on disk) and :class:`~asif_qdrant.store.client.ClientStore`
(any ``qdrant_client.QdrantClient``: a server, or its local mode for small tests). Everything
above this layer speaks in numpy arrays and :class:`~asif_qdrant.types.SparseVector`.

Dense vectors are stored with the Dot distance; callers store L2-normalised vectors, so a
score is a cosine similarity. Sparse vectors have no modifier, so a score is the plain dot
product (the ASIF score). Every write returns only once the points are durable and searchable.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from asif_qdrant.errors import InvalidParameterError, check_int
from asif_qdrant.types import FUSIONS, Fusion, SparseVector

__all__ = [
    "DENSE_BATCH",
    "FUSIONS",
    "CollectionSpec",
    "DenseSearch",
    "Fusion",
    "FusionSearch",
    "PayloadFilter",
    "PointId",
    "Prefetch",
    "Record",
    "ScoredPoint",
    "SparseSearch",
    "Store",
]

PointId = int | str
#: Exact-match payload filter: ``{"category": "animals"}``; a list value matches any of them.
PayloadFilter = Mapping[str, Any]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def nonzero_terms(vector: SparseVector) -> tuple[list[int], list[float]]:
    """A sparse vector's non-zero ``(indices, values)`` as plain lists, for a Qdrant request.

    Example:
        >>> import numpy as np
        >>> nonzero_terms(SparseVector(np.array([3, 5, 9]), np.array([0.5, 0.0, 0.25])))
        ([3, 9], [0.5, 0.25])
    """
    keep = vector.values != 0
    return vector.indices[keep].tolist(), vector.values[keep].tolist()


def filter_conditions(flt: PayloadFilter | None) -> list[tuple[str, Any, bool]]:
    """Validate an exact-match payload filter: ``(key, value, is_any_of_list)`` per condition.

    Example:
        >>> filter_conditions({"category": "animals", "id": [1, 2]})
        [('category', 'animals', False), ('id', [1, 2], True)]
    """
    out: list[tuple[str, Any, bool]] = []
    for key, value in (flt or {}).items():
        if not isinstance(key, str) or not key:
            raise InvalidParameterError(
                f"A filter key must be a non-empty str (a payload key). Got {key!r:.60} instead."
            )
        many = isinstance(value, (list, tuple, set))
        for v in list(value) if many else [value]:
            if not _filter_value(v):
                raise InvalidParameterError(
                    "A filter value must be a str, int (64-bit), bool or a list of them. "
                    f"Got {v!r:.60} for key {key!r} instead."
                )
        out.append((key, list(value) if many else value, many))
    return out


def _filter_value(value: Any) -> bool:
    """A value Qdrant's exact match takes: str, bool, or an int that fits in 64 bits."""
    if isinstance(value, (str, bool)):
        return True
    return isinstance(value, int) and -(2**63) <= value < 2**63


def check_collection_name(name: str) -> str:
    """Validate a collection name (letters, digits, ``_ . -``; starts with a letter or digit)."""
    if not isinstance(name, str) or not _NAME.match(name) or name in {".", ".."}:
        raise InvalidParameterError(
            "A collection name must be 1-255 characters of letters, digits, '_', '.' or '-', "
            f"starting with a letter or digit. Got {name!r} instead."
        )
    return name


@dataclass(frozen=True)
class CollectionSpec:
    """The vectors a collection holds.

    Attributes:
        dense: Named dense vectors and their dimensions (Dot distance).
        sparse: Names of sparse vectors (no modifier: plain dot product).
        on_disk: Keep the vectors and payloads in files read on demand rather than in RAM
            (the embedded engine's ``Memory.Cold`` with on-disk payloads; ``on_disk=True`` on a
            server unless its collection options say otherwise). The anchor collections use it:
            the model answers from its own memory-mapped copy (``anchor_cache``), so the
            engine's copy need not be resident. A storage hint: specs compare equal without it.
    """

    dense: Mapping[str, int] = field(default_factory=dict)
    sparse: tuple[str, ...] = ()
    on_disk: bool = field(default=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form (``on_disk`` only when set, so older spec files read the same)."""
        out: dict[str, Any] = {"dense": dict(self.dense), "sparse": list(self.sparse)}
        if self.on_disk:
            out["on_disk"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollectionSpec:
        """Inverse of :meth:`as_dict`."""
        return cls(
            dense={str(k): int(v) for k, v in data.get("dense", {}).items()},
            sparse=tuple(data.get("sparse", ())),
            on_disk=bool(data.get("on_disk", False)),
        )


@dataclass
class Record:
    """A stored point: id, payload and whichever vectors were asked for."""

    id: PointId
    payload: dict[str, Any] = field(default_factory=dict)
    dense: dict[str, np.ndarray] = field(default_factory=dict)
    sparse: dict[str, SparseVector] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredPoint:
    """A query result."""

    id: PointId
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prefetch:
    """One ranking fed to :meth:`Store.query_fusion`: a query on one named vector.

    Attributes:
        vector_name: The named vector searched (dense or sparse).
        query: A 1-D dense vector (exact Dot search) or a :class:`SparseVector`.
        limit: How many of its best points enter the fusion, >= 1.
    """

    vector_name: str
    query: np.ndarray | SparseVector
    limit: int

    def is_empty(self) -> bool:
        """A sparse query without any non-zero weight (it matches nothing)."""
        return isinstance(self.query, SparseVector) and not bool((self.query.values != 0).any())


def check_fusion(
    prefetches: Sequence[Prefetch], limit: int, fusion: Any, rrf_k: int
) -> list[Prefetch]:
    """Validate the arguments of :meth:`Store.query_fusion`; returns the non-empty prefetches.

    Example:
        >>> p = Prefetch("v", np.array([1.0, 0.0]), 5)
        >>> len(check_fusion([p, Prefetch("s", SparseVector([], []), 5)], 3, "rrf", 2))
        1
    """
    check_int("limit", "Store.query_fusion", limit, minimum=1)
    check_int("rrf_k", "Store.query_fusion", rrf_k, minimum=1)
    if fusion is not None and fusion not in FUSIONS:
        raise InvalidParameterError(
            "The 'fusion' parameter of Store.query_fusion must be one of "
            f"{', '.join(repr(f) for f in FUSIONS)} or None. Got {fusion!r:.100} instead."
        )
    prefetches = list(prefetches)
    if not prefetches or not all(isinstance(p, Prefetch) for p in prefetches):
        raise InvalidParameterError(
            "The 'prefetches' parameter of Store.query_fusion must be a non-empty list of "
            f"asif_qdrant.store.base.Prefetch. Got {prefetches!r:.200} instead."
        )
    if fusion is None and len(prefetches) != 1:
        raise InvalidParameterError(
            "Store.query_fusion with fusion=None runs one plain query: it needs exactly one "
            f"prefetch. Got {len(prefetches)}."
        )
    for p in prefetches:
        check_int("limit", "Prefetch", p.limit, minimum=1)
        if not isinstance(p.query, SparseVector) and np.asarray(p.query).ndim != 1:
            raise InvalidParameterError(
                "A dense Prefetch query must be one 1-D vector. Got shape "
                f"{np.asarray(p.query).shape} instead."
            )
    return [p for p in prefetches if not p.is_empty()]


#: Dense query rows sent in one batch request.
DENSE_BATCH = 64


@dataclass(frozen=True)
class DenseSearch:
    """One batch of exact Dot queries, as :meth:`Store.query_dense` hands it to a backend.

    Attributes:
        vector_name: The named dense vector searched.
        rows: The query rows (float32, at most :data:`DENSE_BATCH`).
        limit: Hits per row, >= 1.
        threshold: The engine's ``score_threshold``, or None.
    """

    vector_name: str
    rows: np.ndarray
    limit: int
    threshold: float | None = None


@dataclass(frozen=True)
class SparseSearch:
    """One sparse query with at least one non-zero term, as a backend runs it.

    Attributes:
        vector_name: The named sparse vector searched.
        indices: The query's non-zero indices.
        values: Their weights.
        limit: How many points to return.
        filter: Exact-match payload filter (already validated).
        with_payload: Return the payloads.
        prefetch: A first stage, or None: ``(indices, values, candidates)`` of a pruned
            query whose ``candidates`` best points are then rescored by the full query.
    """

    vector_name: str
    indices: list[int]
    values: list[float]
    limit: int
    filter: PayloadFilter | None = None
    with_payload: bool = True
    prefetch: tuple[list[int], list[float], int] | None = None


@dataclass(frozen=True)
class FusionSearch:
    """A validated :meth:`Store.query_fusion` call with at least one non-empty prefetch.

    Attributes:
        prefetches: The non-empty rankings to fuse.
        limit: How many fused points to return.
        fusion: ``"rrf"``, ``"dbsf"`` or ``None`` (exactly one prefetch, no fusion).
        rrf_k: The RRF constant.
        filter: Exact-match payload filter, applied to every prefetch (not yet validated).
        with_payload: Return the payloads.
    """

    prefetches: tuple[Prefetch, ...]
    limit: int
    fusion: Fusion | None
    rrf_k: int
    filter: PayloadFilter | None = None
    with_payload: bool = True


class Store(ABC):
    """All Qdrant I/O of the library.

    Implementations must behave identically; the contract tests in ``tests/`` run the same
    assertions against each of them.
    """

    #: A short name of the backend ("edge", "client").
    kind: str = "abstract"

    # -- collections ---------------------------------------------------------------------
    @abstractmethod
    def has_collection(self, name: str) -> bool:
        """Whether the collection exists."""

    @abstractmethod
    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        """Create a collection; raises :class:`StoreError` if it exists."""

    @abstractmethod
    def collection_spec(self, name: str) -> CollectionSpec:
        """The vectors of an existing collection (raises CollectionNotFoundError)."""

    @abstractmethod
    def delete_collection(self, name: str) -> None:
        """Delete a collection and all its points (no error if it does not exist)."""

    @abstractmethod
    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""

    # -- points --------------------------------------------------------------------------
    @abstractmethod
    def upsert(self, name: str, records: Sequence[Record]) -> None:
        """Insert or replace points; durable and searchable when this returns."""

    @abstractmethod
    def delete(self, name: str, ids: Sequence[PointId]) -> None:
        """Delete points by id (unknown ids are ignored)."""

    @abstractmethod
    def retrieve(
        self, name: str, ids: Sequence[PointId], *, with_vectors: bool | Sequence[str] = False
    ) -> list[Record]:
        """Points by id, in the order asked, skipping ids that do not exist."""

    @abstractmethod
    def scroll(
        self,
        name: str,
        *,
        with_vectors: bool | Sequence[str] = False,
        batch_size: int = 256,
    ) -> Iterator[Record]:
        """Every point of the collection, in id order."""

    @abstractmethod
    def count(self, name: str) -> int:
        """Exact number of points."""

    def find_by_payload(self, name: str, key: str, values: Sequence[Any]) -> list[Record]:
        """The points (no vectors) whose payload ``key`` equals one of ``values``.

        This default reads every point; a backend with payload filters overrides it.
        """
        wanted = set(values)
        if not wanted:
            return []
        return [r for r in self.scroll(name) if r.payload.get(key) in wanted]

    def create_payload_index(self, name: str, key: str) -> None:
        """Index the keyword payload field ``key`` (a no-op where the backend has none)."""
        return None

    # -- queries -------------------------------------------------------------------------
    def query_dense(
        self, name: str, vector_name: str, queries: np.ndarray, limit: int
    ) -> list[list[tuple[PointId, float]]]:
        """Exact nearest neighbours (Dot) of each query row: ``(id, score)`` best first."""
        return self._dense_rows(name, vector_name, queries, limit, None)

    def query_sparse(
        self,
        name: str,
        vector_name: str,
        queries: Sequence[SparseVector],
        limit: int,
        *,
        filter: PayloadFilter | None = None,
        with_payload: bool = True,
        prefetch: tuple[int, int] | None = None,
    ) -> list[list[ScoredPoint]]:
        """Top ``limit`` points by sparse dot product for each query, best first.

        A query without any non-zero weight shares no anchor with anything (every score
        would be 0): its result is empty and it is not sent.

        ``prefetch=(nnz, candidates)`` runs each query in two stages, in one engine call:
        the query pruned to its ``nnz`` largest weights finds ``candidates`` points (it walks
        ``nnz`` posting lists instead of all), then the full query rescores them exactly.
        A query with at most ``nnz`` non-zeros runs in one stage (the same result).
        """
        filter_conditions(filter)  # a bad filter fails even when no query is sent
        out: list[list[ScoredPoint]] = []
        for sv in queries:
            indices, values = nonzero_terms(sv)
            if not indices:
                out.append([])
                continue
            first = None
            if prefetch is not None and len(indices) > prefetch[0]:
                top = np.argsort(-np.abs(np.asarray(values)), kind="stable")[: prefetch[0]]
                top.sort()
                first = (
                    [indices[i] for i in top],
                    [values[i] for i in top],
                    max(int(prefetch[1]), int(limit)),
                )
            search = SparseSearch(vector_name, indices, values, limit, filter, with_payload, first)
            out.append(self._run_sparse(name, search))
        return out

    def query_fusion(
        self,
        name: str,
        prefetches: Sequence[Prefetch],
        limit: int,
        *,
        fusion: Fusion | None = "rrf",
        rrf_k: int = 2,
        filter: PayloadFilter | None = None,
        with_payload: bool = True,
    ) -> list[ScoredPoint]:
        """One hybrid query: several prefetch rankings fused by the engine, best first.

        Each prefetch ranks its ``limit`` best points on its own named vector (dense ones by
        exact search); ``filter`` applies to every prefetch. Fusion:

        * ``"rrf"`` (reciprocal rank fusion): ``score(x) = sum over the prefetches that
          returned x of 1 / (rrf_k + rank)``, with ``rank`` counted from 0 (Qdrant's formula;
          its default ``rrf_k`` is 2);
        * ``"dbsf"`` (distribution-based score fusion): each ranking's scores are rescaled
          by their mean +- 3 standard deviations, then summed.

        * ``None``: no fusion; exactly one prefetch, run as a plain query (its own scores,
          at most ``limit`` points, with the filter and payloads).

        Sparse prefetches without any non-zero weight match nothing and are left out; if
        none is left, the result is empty.

        Args:
            name: The collection.
            prefetches: The rankings to fuse (:class:`Prefetch`).
            limit: How many fused points to return, >= 1.
            fusion: ``"rrf"``, ``"dbsf"`` or ``None`` (one prefetch, no fusion).
            rrf_k: The RRF constant, >= 1 (ignored by ``"dbsf"``).
            filter: Exact-match payload filter, applied to every prefetch.
            with_payload: Return the payloads.

        Returns:
            The fused points with their fusion scores.
        """
        todo = check_fusion(prefetches, limit, fusion, rrf_k)
        if not todo:
            return []
        search = FusionSearch(tuple(todo), int(limit), fusion, int(rrf_k), filter, with_payload)
        return self._run_fusion(name, search)

    # -- what each backend runs in its engine ----------------------------------------------
    @abstractmethod
    def _run_dense(self, name: str, search: DenseSearch) -> list[list[tuple[PointId, float]]]:
        """One batch of exact Dot queries: each row's ``(id, score)`` hits, best first.

        With ``search.threshold`` the engine's ``score_threshold`` applies; the hits are not
        compared with it again here (the callers keep the scores strictly above it).
        """

    @abstractmethod
    def _run_sparse(self, name: str, search: SparseSearch) -> list[ScoredPoint]:
        """One sparse query (at least one non-zero term): its hits, best first."""

    @abstractmethod
    def _run_fusion(self, name: str, search: FusionSearch) -> list[ScoredPoint]:
        """One fusion query (see :meth:`query_fusion`): the fused points, best first."""

    def _dense_rows(
        self,
        name: str,
        vector_name: str,
        queries: np.ndarray,
        limit: int,
        threshold: float | None,
    ) -> list[list[tuple[PointId, float]]]:
        """Every query row's hits, in batches of :data:`DENSE_BATCH` rows."""
        q = np.asarray(queries, dtype=np.float32)
        out: list[list[tuple[PointId, float]]] = []
        for start in range(0, len(q), DENSE_BATCH):
            rows = q[start : start + DENSE_BATCH]
            hits = self._run_dense(name, DenseSearch(vector_name, rows, limit, threshold))
            if threshold is not None:
                hits = [[(i, s) for i, s in row if s > threshold] for row in hits]
            out.extend(hits)
        return out

    # -- edits (default implementations on top of the methods above) ----------------------
    def query_dense_above(
        self, name: str, vector_name: str, queries: np.ndarray, threshold: float
    ) -> list[list[tuple[PointId, float]]]:
        """Every point whose exact Dot score with each query row is > ``threshold``.

        Points without the named vector are never returned. The default asks the engine for
        as many points as the collection holds, with its ``score_threshold``; the embedded
        backend overrides it with a growing limit.
        """
        n = self.count(name)
        if n == 0:
            return [[] for _ in range(len(queries))]
        return self._dense_rows(name, vector_name, queries, n, float(threshold))

    def update_vectors(self, name: str, records: Sequence[Record]) -> None:
        """Replace the named vectors given in each record, keeping payload and other vectors.

        The points must exist (unknown ids are skipped); ``payload`` of the records is
        ignored. The default reads the points back and upserts them whole.
        """
        by_id = {r.id: r for r in self.retrieve(name, [r.id for r in records], with_vectors=True)}
        merged = []
        for r in records:
            old = by_id.get(r.id)
            if old is not None:
                merged.append(
                    Record(
                        r.id,
                        old.payload,
                        dense={**old.dense, **r.dense},
                        sparse={**old.sparse, **r.sparse},
                    )
                )
        self.upsert(name, merged)

    # -- lifecycle -----------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Flush and release the backend; the store cannot be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def describe(self) -> str:
        """One line naming the backend and where its data lives."""
        return self.kind
