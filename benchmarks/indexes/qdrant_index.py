"""The anchor search inside the embedded Qdrant engine (``qdrant-edge-py``), four ways.

* ``"exact"``: exact search over the raw vectors (what ``ASIF.relative_from_embeddings`` does
  through :meth:`~asif_qdrant.store.Store.query_dense`).
* ``"sq"``: int8 scalar quantization; the engine scans the codes, oversamples, and rescores
  with the raw vectors.
* ``"bq"``: binary quantization, likewise (needs a larger oversampling).
* ``"hnsw"``: an HNSW graph searched with ``hnsw_ef`` (at least ``k``; default ``2 * k``).

The shard lives in ``path`` (a temporary folder by default, removed by :meth:`close`).

Example:
    >>> import numpy as np
    >>> from benchmarks.indexes import QdrantIndex
    >>> with QdrantIndex("exact") as index:
    ...     _ = index.build([1, 2, 3], np.eye(3))
    ...     index.topk(np.array([[0.0, 1.0, 0.0]]), k=1)[0].tolist()
    [[2]]
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

from asif_qdrant.anchor_index.base import AnchorIndex
from asif_qdrant.errors import (
    InvalidInputError,
    InvalidParameterError,
    StoreError,
    check_int,
    check_real,
)

__all__ = ["QdrantIndex"]

Mode = Literal["exact", "sq", "bq", "hnsw"]
_VEC = "v"
_BATCH = 1024


def _edge() -> Any:
    import qdrant_edge

    return qdrant_edge


class QdrantIndex(AnchorIndex):
    """Anchor search by the embedded Qdrant engine.

    Args:
        mode: ``"exact"``, ``"sq"``, ``"bq"`` or ``"hnsw"``.
        path: Folder of the shard (default: a temporary folder, deleted on close).
        oversampling: Oversampling of the quantized modes (default 2 for sq, 8 for bq).
        hnsw_ef: ``ef`` of the HNSW search; default ``2 * k``.
        hnsw_m: Edges per node of the HNSW graph.
        ef_construct: ``ef`` used while building the graph.
    """

    def __init__(
        self,
        mode: Mode = "exact",
        *,
        path: str | Path | None = None,
        oversampling: float | None = None,
        hnsw_ef: int | None = None,
        hnsw_m: int = 16,
        ef_construct: int = 128,
    ) -> None:
        super().__init__()
        if mode not in ("exact", "sq", "bq", "hnsw"):
            raise InvalidParameterError(
                "The 'mode' parameter of QdrantIndex must be 'exact', 'sq', 'bq' or 'hnsw'. "
                f"Got {mode!r} instead."
            )
        self.mode: Mode = mode
        self.method = f"qdrant-{mode}"
        self.exact = mode == "exact"
        default_os = {"sq": 2.0, "bq": 8.0}.get(mode, 1.0)
        self.oversampling = check_real(
            "oversampling",
            "QdrantIndex",
            default_os if oversampling is None else oversampling,
            greater_than=0,
        )
        self.hnsw_ef = (
            None if hnsw_ef is None else check_int("hnsw_ef", "QdrantIndex", hnsw_ef, minimum=1)
        )
        self.hnsw_m = check_int("hnsw_m", "QdrantIndex", hnsw_m, minimum=0)
        self.ef_construct = check_int("ef_construct", "QdrantIndex", ef_construct, minimum=4)
        self._own_path = path is None
        self.path = (
            Path(tempfile.mkdtemp(prefix="asif-qdrant-index-")) if path is None else Path(path)
        )
        self._shard: Any = None
        self._n = 0

    def __len__(self) -> int:
        return self._n

    # -- building --------------------------------------------------------------------------
    def _config(self, dim: int) -> Any:
        qe = _edge()
        quant: Any = None
        if self.mode == "sq":
            quant = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=True)
        elif self.mode == "bq":
            quant = qe.BinaryQuantizationConfig(always_ram=True)
        hnsw = None
        if self.mode in ("sq", "bq"):  # a plain (graph-free) index over quantized codes
            hnsw = qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=1)
        elif self.mode == "hnsw":
            hnsw = qe.HnswIndexConfig(
                m=self.hnsw_m, ef_construct=self.ef_construct, full_scan_threshold=1
            )
        return qe.EdgeConfig(
            vectors={
                _VEC: qe.EdgeVectorParams(
                    size=dim, distance=qe.Distance.Dot, quantization_config=quant
                )
            },
            hnsw_config=hnsw,
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1)
            if self.mode != "exact"
            else None,
        )

    def _build(self, ids: np.ndarray, emb: np.ndarray) -> None:
        qe = _edge()
        self.close_shard()
        folder = self.path / "shard"
        shutil.rmtree(folder, ignore_errors=True)
        try:
            self._shard = qe.EdgeShard.create(str(folder), self._config(emb.shape[1]))
        except Exception as e:
            raise StoreError(f"Qdrant Edge failed to create the anchor shard: {e}") from e
        self._n = 0
        self._upsert(ids, emb)
        if self.mode != "exact":
            self._shard.optimize()

    def _upsert(self, ids: np.ndarray, emb: np.ndarray) -> None:
        qe = _edge()
        for s in range(0, len(ids), _BATCH):
            rows = emb[s : s + _BATCH].tolist()
            points = [
                qe.Point(int(i), {_VEC: r}, {})
                for i, r in zip(ids[s : s + _BATCH].tolist(), rows, strict=True)
            ]
            self._shard.update(qe.UpdateOperation.upsert_points(points))
        self._n = int(self._shard.count(qe.CountRequest(exact=True)))

    def _add(self, ids: np.ndarray, emb: np.ndarray) -> None:
        found = self._shard.retrieve(ids.tolist(), with_payload=False, with_vector=False)
        if found:
            raise InvalidInputError(
                f"Anchor id {found[0].id} is already in the index; ids must be new."
            )
        self._upsert(ids, emb)

    def _delete(self, ids: np.ndarray) -> int:
        qe = _edge()
        before = self._n
        self._shard.update(qe.UpdateOperation.delete_points(ids.tolist()))
        self._n = int(self._shard.count(qe.CountRequest(exact=True)))
        return before - self._n

    # -- search ----------------------------------------------------------------------------
    def _params(self, kk: int) -> Any:
        qe = _edge()
        if self.mode == "exact":
            return qe.SearchParams(exact=True)
        if self.mode == "hnsw":
            return qe.SearchParams(hnsw_ef=max(kk, self.hnsw_ef or 2 * kk))
        return qe.SearchParams(
            quantization=qe.QuantizationSearchParams(
                ignore=False, rescore=True, oversampling=self.oversampling
            )
        )

    def _topk(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        qe = _edge()
        params = self._params(kk)
        out_r = np.full((len(q), kk), -1, dtype=np.int64)
        out_s = np.full((len(q), kk), -np.inf, dtype=np.float32)
        for s in range(0, len(q), 64):
            reqs = [
                qe.QueryRequest(limit=kk, query=qe.Query.Nearest(row, using=_VEC), params=params)
                for row in q[s : s + 64].tolist()
            ]
            res = self._shard.query_batch(qe.QueryBatchRequest(reqs))
            for i, hits in enumerate(res):
                got = min(kk, len(hits))
                out_r[s + i, :got] = [int(h.id) for h in hits[:got]]
                out_s[s + i, :got] = [h.score for h in hits[:got]]
        return out_r, out_s

    @property
    def shard(self) -> Any:
        """The engine's ``EdgeShard`` (for direct use: scroll, info, snapshots)."""
        return self._shard

    # -- lifecycle -------------------------------------------------------------------------
    def close_shard(self) -> None:
        """Close the engine's shard (keeps the folder)."""
        if self._shard is not None:
            self._shard.close()
            self._shard = None

    def close(self) -> None:
        """Close the shard; a temporary folder is deleted."""
        self.close_shard()
        if self._own_path:
            shutil.rmtree(self.path, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        d = {**super().describe(), "mode": self.mode}
        if self.mode in ("sq", "bq"):
            d["oversampling"] = self.oversampling
        if self.mode == "hnsw":
            d.update(
                hnsw_ef=self.hnsw_ef or "2k", hnsw_m=self.hnsw_m, ef_construct=self.ef_construct
            )
        return d
