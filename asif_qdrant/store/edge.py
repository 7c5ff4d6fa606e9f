"""The embedded backend: the real Qdrant engine in-process (``qdrant-edge-py``).

Each collection is one Edge shard in its own folder under ``<path>/collections/<name>/``,
beside a small ``<name>.json`` that records its vectors. A folder has one owner at a time:
an open :class:`EdgeStore` holds an exclusive lock on ``<path>/asif-qdrant.lock`` (which
records its process id) until it closes, so a second opener, in this process or another,
gets :class:`~asif_qdrant.errors.StoreLockedError` naming the holder. Read-only opens cannot
share a folder either: the engine locks each collection's write-ahead log even to read it.

Example:
    >>> import numpy as np, tempfile
    >>> from asif_qdrant.store import CollectionSpec, EdgeStore, Record
    >>> with EdgeStore(tempfile.mkdtemp()) as store:
    ...     store.create_collection("demo", CollectionSpec(dense={"v": 2}))
    ...     store.upsert("demo", [Record(1, {"t": "x"}, dense={"v": np.array([1.0, 0.0])})])
    ...     store.query_dense("demo", "v", np.array([[1.0, 0.0]]), limit=1)
    [[(1, 1.0)]]
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant.errors import CollectionNotFoundError, StoreError, StoreLockedError
from asif_qdrant.store import wire
from asif_qdrant.store.base import (
    DENSE_BATCH,
    CollectionSpec,
    DenseSearch,
    FusionSearch,
    PayloadFilter,
    PointId,
    Record,
    ScoredPoint,
    SparseSearch,
    Store,
    check_collection_name,
    filter_conditions,
)
from asif_qdrant.types import SparseVector

__all__ = ["EdgeStore", "engine_failure"]

_BATCH = 512
#: The file an open store locks in its folder (and writes its process id into).
LOCK_FILE = "asif-qdrant.lock"


def engine_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of the engine to report as a StoreError.

    Every ``Exception``, and the engine's Rust panics: pyo3 raises them as
    ``pyo3_runtime.PanicException``, a ``BaseException`` that ``except Exception`` misses (a
    truncated vector file panics on read). Interrupts and exits are not failures.

    Example:
        >>> engine_failure(ValueError("x")), engine_failure(KeyboardInterrupt())
        (True, False)
    """
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _edge() -> Any:
    import qdrant_edge

    return qdrant_edge


class EdgeStore(Store):
    """Collections stored by the embedded Qdrant engine in a folder.

    Args:
        path: The folder (created if missing).
        on_disk: Collections this store creates keep their dense vectors and sparse indexes
            in memory-mapped files (the engine's ``Memory.Cached``) instead of RAM: for
            catalogs larger than memory, at some cost in latency when the pages are cold.
    """

    kind = "edge"

    def __init__(self, path: str | os.PathLike[str], *, on_disk: bool = False) -> None:
        self.path = Path(path).expanduser().absolute()
        self.on_disk = bool(on_disk)
        try:
            (self.path / "collections").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"Cannot create the store folder {self.path}: {e}") from e
        self._lock_fd = _lock_folder(self.path)
        self._shards: dict[str, Any] = {}
        self._closed = False
        # Opening a shard takes its write-ahead-log lock: two threads opening the same
        # collection at once would race for it, so opens (and creates, deletes) take turns.
        self._open_lock = threading.RLock()

    # -- helpers -------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        return self.path / "collections" / check_collection_name(name)

    def _spec_file(self, name: str) -> Path:
        return self.path / "collections" / f"{check_collection_name(name)}.json"

    def _shard(self, name: str) -> Any:
        if self._closed:
            raise StoreError(f"The store at {self.path} is closed.")
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._open_lock:
            return self._load_shard(name)

    def _load_shard(self, name: str) -> Any:
        shard = self._shards.get(name)  # opened by another thread while this one waited
        if shard is not None:
            return shard
        if not self._spec_file(name).exists():
            raise CollectionNotFoundError(
                f"Collection '{name}' does not exist in {self.path}. "
                f"Existing collections: {self.list_collections()}."
            )
        try:
            shard = _edge().EdgeShard.load(str(self._dir(name)))
        except BaseException as e:
            if not engine_failure(e):
                raise
            hint = ""
            if "WAL" in str(e) or "WouldBlock" in str(e):
                hint = (
                    " It is open in another process or another store object: close that one "
                    "first (an embedded store has one opener at a time), or use a Qdrant server "
                    "for concurrent access."
                )
            raise StoreError(f"Cannot open collection '{name}' in {self.path}: {e}.{hint}") from e
        self._shards[name] = shard
        return shard

    def _call(self, name: str, what: str, fn: Any, *args: Any) -> Any:
        shard = self._shard(name)
        try:
            return fn(shard, *args)
        except BaseException as e:
            if not engine_failure(e):
                raise
            raise StoreError(f"Qdrant Edge failed to {what} in collection '{name}': {e}") from e

    def _update(self, name: str, what: str, op: Any) -> None:
        self._call(name, what, lambda s, o: s.update(o), op)

    # -- collections ---------------------------------------------------------------------
    def has_collection(self, name: str) -> bool:  # noqa: D102
        return self._spec_file(name).exists()

    def create_collection(self, name: str, spec: CollectionSpec) -> None:  # noqa: D102
        with self._open_lock:
            self._create_collection(name, spec)

    def _create_collection(self, name: str, spec: CollectionSpec) -> None:
        qe = _edge()
        if self.has_collection(name):
            raise StoreError(f"Collection '{name}' already exists in {self.path}.")
        folder = self._dir(name)
        if folder.exists():  # left over from an interrupted create: the spec file comes last
            shutil.rmtree(folder)
        memory = {"memory": qe.Memory.Cached} if self.on_disk else {}
        cold = {"on_disk_payload": True} if spec.on_disk else {}
        if spec.on_disk:  # read on demand: opening the collection maps, it does not load
            memory = {"memory": qe.Memory.Cold}
        config = qe.EdgeConfig(
            vectors={
                vn: qe.EdgeVectorParams(size=int(dim), distance=qe.Distance.Dot, **memory)
                for vn, dim in spec.dense.items()
            },
            sparse_vectors={
                vn: qe.EdgeSparseVectorParams(modifier=getattr(qe.Modifier, "None"), **memory)
                for vn in spec.sparse
            },
            **cold,
        )
        try:
            shard = qe.EdgeShard.create(str(folder), config)
        except BaseException as e:
            if not engine_failure(e):
                raise
            raise StoreError(f"Qdrant Edge failed to create collection '{name}': {e}") from e
        self._shards[name] = shard
        tmp = self._spec_file(name).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(spec.as_dict()))
        os.replace(tmp, self._spec_file(name))

    def collection_spec(self, name: str) -> CollectionSpec:  # noqa: D102
        try:
            data = json.loads(self._spec_file(name).read_text())
        except FileNotFoundError:
            raise CollectionNotFoundError(
                f"Collection '{name}' does not exist in {self.path}."
            ) from None
        return CollectionSpec.from_dict(data)

    def delete_collection(self, name: str) -> None:  # noqa: D102
        with self._open_lock:
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            self._spec_file(name).unlink(missing_ok=True)
            shutil.rmtree(self._dir(name), ignore_errors=True)

    def list_collections(self) -> list[str]:  # noqa: D102
        return sorted(p.stem for p in (self.path / "collections").glob("*.json"))

    # -- points --------------------------------------------------------------------------
    def upsert(self, name: str, records: Sequence[Record]) -> None:  # noqa: D102
        qe = _edge()
        for batch in wire.chunks(records, _BATCH):
            points = [
                qe.Point(r.id, wire.point_vectors(r, qe.SparseVector), r.payload or {})
                for r in batch
            ]
            self._update(name, "upsert points", qe.UpdateOperation.upsert_points(points))

    def delete(self, name: str, ids: Sequence[PointId]) -> None:  # noqa: D102
        self._update(name, "delete points", _edge().UpdateOperation.delete_points(list(ids)))

    def retrieve(  # noqa: D102
        self, name: str, ids: Sequence[PointId], *, with_vectors: bool | Sequence[str] = False
    ) -> list[Record]:
        wv = wire.vector_selector(with_vectors)
        found = self._call(
            name,
            "retrieve points",
            lambda s: s.retrieve(list(ids), with_payload=True, with_vector=wv),
        )
        return wire.records_in_order(ids, found)

    def scroll(  # noqa: D102
        self, name: str, *, with_vectors: bool | Sequence[str] = False, batch_size: int = 256
    ) -> Iterator[Record]:
        qe = _edge()
        wv = wire.vector_selector(with_vectors)

        def page(offset: PointId | None) -> Any:
            req = qe.ScrollRequest(
                offset=offset, limit=batch_size, with_payload=True, with_vector=wv
            )
            return self._call(name, "scroll", lambda s, r: s.scroll(r), req)

        yield from wire.scroll_records(page)

    def find_by_payload(  # noqa: D102
        self, name: str, key: str, values: Sequence[Any]
    ) -> list[Record]:
        values = list(dict.fromkeys(values))
        if not values:
            return []
        qe = _edge()
        out: list[Record] = []
        for batch in wire.chunks(values, _BATCH):
            flt = _filter({key: list(batch)})

            def page(offset: PointId | None, flt: Any = flt) -> Any:
                req = qe.ScrollRequest(
                    offset=offset, limit=256, filter=flt, with_payload=True, with_vector=False
                )
                return self._call(name, "scroll", lambda s, r: s.scroll(r), req)

            out.extend(wire.scroll_records(page))
        return out

    def create_payload_index(self, name: str, key: str) -> None:  # noqa: D102
        qe = _edge()
        op = qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword)
        self._update(name, "create a payload index", op)

    def count(self, name: str) -> int:  # noqa: D102
        req = _edge().CountRequest(exact=True)
        return int(self._call(name, "count points", lambda s, r: s.count(r), req))

    def update_vectors(self, name: str, records: Sequence[Record]) -> None:  # noqa: D102
        qe = _edge()
        for batch in wire.chunks(wire.keep_existing(self, name, records), _BATCH):
            points = [qe.PointVectors(r.id, wire.point_vectors(r, qe.SparseVector)) for r in batch]
            self._update(name, "update vectors", qe.UpdateOperation.update_vectors(points))

    # -- queries -------------------------------------------------------------------------
    def _run_dense(self, name: str, search: DenseSearch) -> list[list[tuple[PointId, float]]]:
        qe = _edge()
        params = qe.SearchParams(exact=True)
        above = {} if search.threshold is None else {"score_threshold": search.threshold}
        reqs = [
            qe.QueryRequest(
                limit=search.limit,
                query=qe.Query.Nearest(row.tolist(), using=search.vector_name),
                params=params,
                **above,
            )
            for row in search.rows
        ]
        res = self._call(
            name,
            "query dense vectors" + ("" if search.threshold is None else " above a score"),
            lambda s, r: s.query_batch(qe.QueryBatchRequest(r)),
            reqs,
        )
        return [wire.id_scores(hits) for hits in res]

    def _run_sparse(self, name: str, search: SparseSearch) -> list[ScoredPoint]:
        qe = _edge()
        flt = _filter(search.filter)
        stages = None
        if search.prefetch is not None:
            idx, vals, candidates = search.prefetch
            stages = [
                qe.Prefetch(
                    limit=candidates,
                    query=qe.Query.Nearest(
                        qe.SparseVector(indices=idx, values=vals), using=search.vector_name
                    ),
                    filter=flt,
                )
            ]
        req = qe.QueryRequest(
            limit=search.limit,
            prefetches=stages,
            query=qe.Query.Nearest(
                qe.SparseVector(indices=search.indices, values=search.values),
                using=search.vector_name,
            ),
            filter=flt,
            with_payload=search.with_payload,
        )
        return wire.scored_points(
            self._call(name, "query sparse vectors", lambda s, r: s.query(r), req)
        )

    def _run_fusion(self, name: str, search: FusionSearch) -> list[ScoredPoint]:
        qe = _edge()
        flt = _filter(search.filter)
        stages = [
            qe.Prefetch(
                limit=int(p.limit),
                query=qe.Query.Nearest(
                    wire.query_vector(p.query, qe.SparseVector), using=p.vector_name
                ),
                params=None if isinstance(p.query, SparseVector) else qe.SearchParams(exact=True),
                filter=flt,
            )
            for p in search.prefetches
        ]
        if search.fusion is None:
            (stage,) = stages
            req = qe.QueryRequest(
                limit=search.limit,
                query=stage.query,
                params=stage.params,
                filter=flt,
                with_payload=search.with_payload,
            )
        else:
            rrf = search.fusion == "rrf"
            req = qe.QueryRequest(
                limit=search.limit,
                prefetches=stages,
                query=qe.Fusion.Rrf(k=search.rrf_k) if rrf else qe.Fusion.Dbsf(),
                filter=flt,
                with_payload=search.with_payload,
            )
        return wire.scored_points(
            self._call(name, "run a fusion query", lambda s, r: s.query(r), req)
        )

    def query_dense_above(  # noqa: D102
        self, name: str, vector_name: str, queries: np.ndarray, threshold: float
    ) -> list[list[tuple[PointId, float]]]:
        q = np.asarray(queries, dtype=np.float32)
        n = self.count(name)
        out: list[list[tuple[PointId, float]]] = [[] for _ in range(len(q))]
        if n == 0:
            return out
        # A large limit costs the engine (a top-n heap per query) even when few points pass
        # the threshold: start small and ask again, with a larger limit, only for the queries
        # that filled it.
        limit = min(n, 256)
        pending = list(range(len(q)))
        while pending:
            again = []
            for rows in wire.chunks(pending, DENSE_BATCH):
                search = DenseSearch(vector_name, q[list(rows)], limit, float(threshold))
                for row, hits in zip(rows, self._run_dense(name, search), strict=True):
                    if len(hits) >= limit and limit < n:
                        again.append(row)
                    else:
                        out[row] = [(i, s) for i, s in hits if s > threshold]
            pending = again
            limit = min(n, limit * 8)
        return out

    # -- lifecycle -----------------------------------------------------------------------
    def flush(self) -> None:
        """Flush every open collection to disk."""
        for shard in self._shards.values():
            shard.flush()

    def optimize(self, name: str) -> bool:
        """Merge a collection's segments into optimized ones (blocking).

        The embedded engine runs no background optimizer: points written stay in appendable
        segments held in RAM until this runs. With ``on_disk=True`` the optimized segments
        are memory-mapped, which is what keeps a large catalog's resident memory bounded.

        Returns:
            Whether anything was optimized.
        """
        return bool(self._call(name, "optimize", lambda s: s.optimize()))

    def close(self) -> None:  # noqa: D102
        if self._closed:
            return
        errors = []
        for name, shard in list(self._shards.items()):
            try:
                shard.flush()
                shard.close()
            except Exception as e:  # pragma: no cover - close every shard even if one fails
                errors.append(f"{name}: {e}")
        self._shards.clear()
        self._closed = True
        _unlock_folder(self._lock_fd)
        if errors:
            raise StoreError(f"Closing the store at {self.path} failed: {'; '.join(errors)}")

    def __del__(self) -> None:  # an unclosed store dropped: its folder is free again
        if not getattr(self, "_closed", True):
            _unlock_folder(self._lock_fd)

    def describe(self) -> str:  # noqa: D102
        return f"embedded Qdrant engine (qdrant-edge) at {self.path}"


def _lock_folder(path: Path) -> int:
    """Take the folder's owner lock (non-blocking) and record our pid; returns the fd."""
    lock = path / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StoreError(f"Cannot create the lock file {lock}: {e}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = None
        with contextlib.suppress(OSError, ValueError):
            holder = int(os.pread(fd, 32, 0).decode().split()[0])
        os.close(fd)
        who = "this process" if holder == os.getpid() else f"process {holder}"
        raise StoreLockedError(
            f"The store folder {path} is in use by {who if holder else 'another process'} "
            f"(it holds {lock}). An embedded store has one owner at a time, for reading too "
            "(the engine locks each collection's write-ahead log): close the model there "
            "first, or serve the model with a Qdrant server (--url) for concurrent access.",
            holder,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _unlock_folder(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _filter(flt: PayloadFilter | None) -> Any:
    conditions = filter_conditions(flt)
    if not conditions:
        return None
    qe = _edge()
    return qe.Filter(
        must=[
            qe.FieldCondition(key=key, match=qe.MatchAny(v) if many else qe.MatchValue(v))
            for key, v, many in conditions
        ]
    )
