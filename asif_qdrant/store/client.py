"""The client backend: any ``qdrant_client.QdrantClient`` (a server, or its local mode).

qdrant-client's local mode (``QdrantClient(":memory:")`` or ``path=...``) is a pure-Python
emulation that scores sparse vectors in a Python loop: fine for small tests, far too slow for
real catalogs. Use it against a Qdrant server for real work.

Example:
    >>> import numpy as np
    >>> from qdrant_client import QdrantClient
    >>> from asif_qdrant.store import ClientStore, CollectionSpec, Record
    >>> store = ClientStore(QdrantClient(":memory:"))
    >>> store.create_collection("demo", CollectionSpec(dense={"v": 2}))
    >>> store.upsert("demo", [Record(1, {"t": "x"}, dense={"v": np.array([1.0, 0.0])})])
    >>> store.query_dense("demo", "v", np.array([[1.0, 0.0]]), limit=1)
    [[(1, 1.0)]]
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from asif_qdrant.errors import CollectionNotFoundError, InvalidParameterError, StoreError
from asif_qdrant.store.base import (
    CollectionSpec,
    PayloadFilter,
    PointId,
    Record,
    ScoredPoint,
    Store,
    check_collection_name,
    filter_conditions,
)
from asif_qdrant.types import SparseVector

__all__ = ["ClientStore"]

_BATCH = 256


class ClientStore(Store):
    """Collections stored through a ``qdrant_client.QdrantClient``.

    Args:
        client: The client. The store does not close it unless ``close_client`` is True.
        close_client: Close the client in :meth:`close`.
    """

    kind = "client"

    def __init__(self, client: Any, *, close_client: bool = False) -> None:
        from qdrant_client import QdrantClient

        if not isinstance(client, QdrantClient):
            raise InvalidParameterError(
                "The 'client' parameter of ClientStore must be a qdrant_client.QdrantClient. "
                f"Got {type(client).__name__} instead."
            )
        self.client = client
        self._close_client = close_client
        self._closed = False

    def _call(self, name: str, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise StoreError("The store is closed.")
        try:
            with warnings.catch_warnings():
                # Local mode warns that search params are ignored: it is always exact.
                warnings.filterwarnings("ignore", message="Local mode performs exact")
                return fn(*args, **kwargs)
        except CollectionNotFoundError:
            raise
        except Exception as e:
            if "not found" in str(e).lower() and not self.has_collection(name):
                raise CollectionNotFoundError(f"Collection '{name}' does not exist.") from e
            raise StoreError(f"Qdrant failed to {what} in collection '{name}': {e}") from e

    # -- collections ---------------------------------------------------------------------
    def has_collection(self, name: str) -> bool:  # noqa: D102
        return bool(self.client.collection_exists(check_collection_name(name)))

    def create_collection(self, name: str, spec: CollectionSpec) -> None:  # noqa: D102
        from qdrant_client import models

        if self.has_collection(name):
            raise StoreError(f"Collection '{name}' already exists.")
        self._call(
            name,
            "create the collection",
            self.client.create_collection,
            collection_name=name,
            vectors_config={
                vn: models.VectorParams(size=int(dim), distance=models.Distance.DOT)
                for vn, dim in spec.dense.items()
            },
            sparse_vectors_config={
                vn: models.SparseVectorParams(modifier=models.Modifier.NONE) for vn in spec.sparse
            },
        )

    def collection_spec(self, name: str) -> CollectionSpec:  # noqa: D102
        if not self.has_collection(name):
            raise CollectionNotFoundError(f"Collection '{name}' does not exist.")
        info = self._call(name, "read the collection", self.client.get_collection, name)
        vectors = info.config.params.vectors or {}
        if not isinstance(vectors, dict):  # a single unnamed vector: not one of ours
            vectors = {"": vectors}
        sparse = info.config.params.sparse_vectors or {}
        return CollectionSpec(
            dense={vn: int(p.size) for vn, p in vectors.items()}, sparse=tuple(sorted(sparse))
        )

    def delete_collection(self, name: str) -> None:  # noqa: D102
        if self.has_collection(name):
            self._call(name, "delete the collection", self.client.delete_collection, name)

    def list_collections(self) -> list[str]:  # noqa: D102
        return sorted(c.name for c in self.client.get_collections().collections)

    # -- points --------------------------------------------------------------------------
    def upsert(self, name: str, records: Sequence[Record]) -> None:  # noqa: D102
        from qdrant_client import models

        for start in range(0, len(records), _BATCH):
            points = []
            for r in records[start : start + _BATCH]:
                vector: dict[str, Any] = {
                    vn: np.asarray(v, dtype=np.float32).tolist() for vn, v in r.dense.items()
                }
                for vn, sv in r.sparse.items():
                    vector[vn] = models.SparseVector(
                        indices=sv.indices.tolist(), values=sv.values.tolist()
                    )
                points.append(models.PointStruct(id=r.id, vector=vector, payload=r.payload))
            self._call(
                name,
                "upsert points",
                self.client.upsert,
                collection_name=name,
                points=points,
                wait=True,
            )

    def delete(self, name: str, ids: Sequence[PointId]) -> None:  # noqa: D102
        from qdrant_client import models

        self._call(
            name,
            "delete points",
            self.client.delete,
            collection_name=name,
            points_selector=models.PointIdsList(points=list(ids)),
            wait=True,
        )

    def retrieve(  # noqa: D102
        self, name: str, ids: Sequence[PointId], *, with_vectors: bool | Sequence[str] = False
    ) -> list[Record]:
        wv = with_vectors if isinstance(with_vectors, bool) else list(with_vectors)
        found = self._call(
            name,
            "retrieve points",
            self.client.retrieve,
            collection_name=name,
            ids=list(ids),
            with_payload=True,
            with_vectors=wv,
        )
        by_id = {rec.id: rec for rec in map(_record, found)}
        return [by_id[i] for i in ids if i in by_id]

    def scroll(  # noqa: D102
        self, name: str, *, with_vectors: bool | Sequence[str] = False, batch_size: int = 256
    ) -> Iterator[Record]:
        wv = with_vectors if isinstance(with_vectors, bool) else list(with_vectors)
        offset = None
        while True:
            page, offset = self._call(
                name,
                "scroll",
                self.client.scroll,
                collection_name=name,
                limit=batch_size,
                offset=offset,
                with_payload=True,
                with_vectors=wv,
            )
            for r in page:
                yield _record(r)
            if offset is None or not page:
                return

    def count(self, name: str) -> int:  # noqa: D102
        res = self._call(name, "count points", self.client.count, collection_name=name, exact=True)
        return int(res.count)

    # -- queries -------------------------------------------------------------------------
    def query_dense(  # noqa: D102
        self, name: str, vector_name: str, queries: np.ndarray, limit: int
    ) -> list[list[tuple[PointId, float]]]:
        from qdrant_client import models

        q = np.asarray(queries, dtype=np.float32)
        out: list[list[tuple[PointId, float]]] = []
        for start in range(0, len(q), 64):
            reqs = [
                models.QueryRequest(
                    query=row.tolist(),
                    using=vector_name,
                    limit=limit,
                    params=models.SearchParams(exact=True),
                )
                for row in q[start : start + 64]
            ]
            res = self._call(
                name,
                "query dense vectors",
                self.client.query_batch_points,
                collection_name=name,
                requests=reqs,
            )
            out.extend([[(p.id, float(p.score)) for p in r.points] for r in res])
        return out

    def query_sparse(  # noqa: D102
        self,
        name: str,
        vector_name: str,
        queries: Sequence[SparseVector],
        limit: int,
        *,
        filter: PayloadFilter | None = None,
        with_payload: bool = True,
    ) -> list[list[ScoredPoint]]:
        from qdrant_client import models

        flt = _filter(filter)
        out: list[list[ScoredPoint]] = []
        for sv in queries:
            keep = sv.values != 0
            if not keep.any():  # shares no anchor with anything: every score is 0
                out.append([])
                continue
            res = self._call(
                name,
                "query sparse vectors",
                self.client.query_points,
                collection_name=name,
                query=models.SparseVector(
                    indices=sv.indices[keep].tolist(), values=sv.values[keep].tolist()
                ),
                using=vector_name,
                limit=limit,
                query_filter=flt,
                with_payload=with_payload,
            )
            out.append(
                [ScoredPoint(p.id, float(p.score), dict(p.payload or {})) for p in res.points]
            )
        return out

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:  # noqa: D102
        if not self._closed and self._close_client:
            self.client.close()
        self._closed = True

    def describe(self) -> str:  # noqa: D102
        inner = getattr(self.client, "_client", None)
        where = type(inner).__name__ if inner is not None else "QdrantClient"
        if where == "QdrantLocal":
            return "qdrant-client local mode (pure-Python emulation; for small tests)"
        return f"Qdrant server via qdrant-client ({where})"


def _record(r: Any) -> Record:
    rec = Record(id=r.id, payload=dict(r.payload or {}))
    vectors = r.vector or {}
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


def _filter(flt: PayloadFilter | None) -> Any:
    conditions = filter_conditions(flt)
    if not conditions:
        return None
    from qdrant_client import models

    return models.Filter(
        must=[
            models.FieldCondition(
                key=key, match=models.MatchAny(any=v) if many else models.MatchValue(value=v)
            )
            for key, v, many in conditions
        ]
    )
