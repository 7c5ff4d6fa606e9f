"""The wire form both backends share: point vectors, records, hits, pages.

The embedded engine (``qdrant_edge``) and qdrant-client (``qdrant_client.models``) spell their
requests with different classes but the same shapes: a point's vectors are a dict of named
dense lists and sparse vectors, a point read back has ``.id``, ``.payload`` and ``.vector``, a
hit has ``.id``, ``.score`` and ``.payload``, and a scroll is a loop over pages with a next
offset. These functions hold that common half; where a backend class is needed, it is passed
in (``sparse_vector``: the backend's ``SparseVector`` class, called with ``indices`` and
``values``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from asif_qdrant.store.base import PointId, Record, ScoredPoint, nonzero_terms
from asif_qdrant.types import SparseVector

if TYPE_CHECKING:
    from asif_qdrant.store.base import Store

__all__ = [
    "chunks",
    "id_scores",
    "keep_existing",
    "point_id",
    "point_vectors",
    "query_vector",
    "records_in_order",
    "scored_points",
    "scroll_records",
    "to_record",
    "vector_selector",
]

_T = TypeVar("_T")

#: A page fetcher for :func:`scroll_records`: offset in, ``(points, next offset)`` out.
PageFetcher = Callable[[PointId | None], tuple[Sequence[Any], PointId | None]]


def chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """Consecutive slices of at most ``size`` items (one request each).

    Example:
        >>> [list(c) for c in chunks([1, 2, 3, 4, 5], 2)]
        [[1, 2], [3, 4], [5]]
    """
    for start in range(0, len(items), size):
        yield items[start : start + size]


def point_id(pid: Any) -> PointId:
    """A point id as the interface speaks it: an int stays, a UUID (object or str) is a str.

    Example:
        >>> import uuid
        >>> point_id(7), point_id(uuid.UUID(int=1))
        (7, '00000000-0000-0000-0000-000000000001')
    """
    return pid if isinstance(pid, int) else str(pid)


def vector_selector(with_vectors: bool | Sequence[str]) -> bool | list[str]:
    """The ``with_vectors`` of a read request: all, none, or the named vectors as a list."""
    return with_vectors if isinstance(with_vectors, bool) else list(with_vectors)


def point_vectors(record: Record, sparse_vector: Callable[..., Any]) -> dict[str, Any]:
    """A record's named vectors as a write request wants them.

    Dense vectors become float32 lists; sparse ones ``sparse_vector(indices=..., values=...)``
    with every stored term.

    Example:
        >>> rec = Record(1, dense={"d": np.array([1.0, 0.5])},
        ...              sparse={"s": SparseVector(np.array([3]), np.array([0.25]))})
        >>> point_vectors(rec, lambda indices, values: (indices, values))
        {'d': [1.0, 0.5], 's': ([3], [0.25])}
    """
    vector: dict[str, Any] = {
        vn: np.asarray(v, dtype=np.float32).tolist() for vn, v in record.dense.items()
    }
    for vn, sv in record.sparse.items():
        vector[vn] = sparse_vector(indices=sv.indices.tolist(), values=sv.values.tolist())
    return vector


def query_vector(query: np.ndarray | SparseVector, sparse_vector: Callable[..., Any]) -> Any:
    """A dense (float32 list) or sparse (non-zero terms) query vector for a request."""
    if isinstance(query, SparseVector):
        indices, values = nonzero_terms(query)
        return sparse_vector(indices=indices, values=values)
    return np.asarray(query, dtype=np.float32).tolist()


def to_record(point: Any) -> Record:
    """A point read back from the engine (``.id``, ``.payload``, ``.vector``) as a Record.

    A vector with ``indices`` is sparse, anything else dense; a single unnamed vector (not a
    collection of this library) is kept under the name ``""``.
    """
    rec = Record(id=point_id(point.id), payload=dict(point.payload or {}))
    vectors = point.vector or {}
    if not isinstance(vectors, dict):
        vectors = {"": vectors}
    for vn, v in vectors.items():
        if hasattr(v, "indices"):
            rec.sparse[vn] = SparseVector(
                indices=np.asarray(v.indices), values=np.asarray(v.values)
            )
        else:
            rec.dense[vn] = np.asarray(v, dtype=np.float32)
    return rec


def records_in_order(ids: Sequence[PointId], points: Iterable[Any]) -> list[Record]:
    """The points found, as Records in the order of ``ids`` (ids not found are skipped)."""
    by_id = {rec.id: rec for rec in map(to_record, points)}
    return [by_id[i] for i in ids if i in by_id]


def scroll_records(fetch_page: PageFetcher) -> Iterator[Record]:
    """Every point, page after page, until the engine gives no next offset (or no points)."""
    offset: PointId | None = None
    while True:
        page, offset = fetch_page(offset)
        for point in page:
            yield to_record(point)
        if offset is None or not page:
            return


def scored_points(hits: Iterable[Any]) -> list[ScoredPoint]:
    """Hits (``.id``, ``.score``, ``.payload``) as ScoredPoints, in the engine's order."""
    return [ScoredPoint(point_id(h.id), float(h.score), dict(h.payload or {})) for h in hits]


def id_scores(hits: Iterable[Any]) -> list[tuple[PointId, float]]:
    """Hits (``.id``, ``.score``) as ``(id, score)`` pairs, in the engine's order."""
    return [(point_id(h.id), float(h.score)) for h in hits]


def keep_existing(store: Store, name: str, records: Sequence[Record]) -> list[Record]:
    """The records whose point exists (read without vectors): an engine refuses unknown ids."""
    present = {r.id for r in store.retrieve(name, [r.id for r in records])}
    return [r for r in records if r.id in present]
