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
    "FUSIONS",
    "CollectionSpec",
    "Fusion",
    "PayloadFilter",
    "PointId",
    "Prefetch",
    "Record",
    "ScoredPoint",
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
        if isinstance(value, (list, tuple, set)):
            out.append((key, list(value), True))
        elif isinstance(value, (str, int, bool)):
            out.append((key, value, False))
        else:
            raise InvalidParameterError(
                "A filter value must be a str, int, bool or a list of them. "
                f"Got {value!r} for key {key!r} instead."
            )
    return out


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
    """

    dense: Mapping[str, int] = field(default_factory=dict)
    sparse: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return {"dense": dict(self.dense), "sparse": list(self.sparse)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollectionSpec:
        """Inverse of :meth:`as_dict`."""
        return cls(
            dense={str(k): int(v) for k, v in data.get("dense", {}).items()},
            sparse=tuple(data.get("sparse", ())),
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

    # -- queries -------------------------------------------------------------------------
    @abstractmethod
    def query_dense(
        self, name: str, vector_name: str, queries: np.ndarray, limit: int
    ) -> list[list[tuple[PointId, float]]]:
        """Exact nearest neighbours (Dot) of each query row: ``(id, score)`` best first."""

    @abstractmethod
    def query_sparse(
        self,
        name: str,
        vector_name: str,
        queries: Sequence[SparseVector],
        limit: int,
        *,
        filter: PayloadFilter | None = None,
        with_payload: bool = True,
    ) -> list[list[ScoredPoint]]:
        """Top ``limit`` points by sparse dot product for each query, best first."""

    @abstractmethod
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

    # -- edits (default implementations on top of the methods above) ----------------------
    def query_dense_above(
        self, name: str, vector_name: str, queries: np.ndarray, threshold: float
    ) -> list[list[tuple[PointId, float]]]:
        """Every point whose exact Dot score with each query row is > ``threshold``.

        Points without the named vector are never returned. The default asks
        :meth:`query_dense` for every point and filters; backends override it with the
        engine's own ``score_threshold``.
        """
        n = self.count(name)
        if n == 0:
            return [[] for _ in range(len(queries))]
        res = self.query_dense(name, vector_name, queries, n)
        return [[(i, s) for i, s in hits if s > threshold] for hits in res]

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
