"""Store.query_fusion (prefetch + fusion in one query), asserted against every backend."""

from __future__ import annotations

import numpy as np
import pytest

from asif_qdrant.errors import InvalidParameterError
from asif_qdrant.store import CollectionSpec, Record, Store
from asif_qdrant.store.base import Prefetch
from asif_qdrant.types import SparseVector

N = 40


def _fill(store: Store) -> tuple[np.ndarray, list[SparseVector]]:
    rng = np.random.default_rng(7)
    dense = rng.normal(size=(N, 6)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    sparse = []
    for _ in range(N):
        idx = rng.choice(20, size=5, replace=False)
        sparse.append(SparseVector(indices=idx, values=rng.random(5)))
    store.create_collection("c", CollectionSpec(dense={"d": 6}, sparse=("s",)))
    store.upsert(
        "c",
        [
            Record(
                i,
                {"group": "even" if i % 2 == 0 else "odd", "i": i},
                dense={"d": dense[i]},
                sparse={"s": sparse[i]},
            )
            for i in range(N)
        ],
    )
    return dense, sparse


def _rankings(store: Store, q_dense: np.ndarray, q_sparse: SparseVector, limit: int, flt=None):
    dense_ids = None
    if flt is None:
        (dense_hits,) = store.query_dense("c", "d", q_dense[None, :], limit)
        dense_ids = [i for i, _ in dense_hits]
    (sparse_hits,) = store.query_sparse("c", "s", [q_sparse], limit, filter=flt)
    return dense_ids, [h.id for h in sparse_hits]


def _rrf(rankings: list[list[int]], k: int) -> dict[int, float]:
    out: dict[int, float] = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking):
            out[pid] = out.get(pid, 0.0) + 1.0 / (k + rank)
    return out


@pytest.mark.parametrize("rrf_k", [2, 60])
def test_rrf_equals_the_direct_fusion_of_both_rankings(store: Store, rrf_k: int) -> None:
    _fill(store)
    rng = np.random.default_rng(1)
    q_dense = rng.normal(size=6).astype(np.float32)
    q_sparse = SparseVector(indices=np.arange(0, 20, 2), values=rng.random(10))
    dense_ids, sparse_ids = _rankings(store, q_dense, q_sparse, 12)
    assert dense_ids is not None
    expect = _rrf([dense_ids, sparse_ids], rrf_k)
    got = store.query_fusion(
        "c",
        [Prefetch("d", q_dense, 12), Prefetch("s", q_sparse, 12)],
        limit=30,
        rrf_k=rrf_k,
    )
    assert len(got) == len(expect)  # the union of both prefetches, nothing else
    assert {h.id: pytest.approx(h.score, rel=1e-5) for h in got} == expect
    scores = [h.score for h in got]
    assert scores == sorted(scores, reverse=True)
    assert all(h.payload["i"] == h.id for h in got)
    top = store.query_fusion(
        "c", [Prefetch("d", q_dense, 12), Prefetch("s", q_sparse, 12)], limit=3, rrf_k=rrf_k
    )
    assert [h.score for h in top] == pytest.approx(sorted(expect.values(), reverse=True)[:3])


def test_filter_applies_to_every_prefetch(store: Store) -> None:
    dense, _ = _fill(store)
    q_dense = dense[3] + 0.1
    q_sparse = SparseVector(indices=np.arange(20), values=np.linspace(1.0, 0.1, 20))
    flt = {"group": "odd"}
    (sparse_ids,) = [[h.id for h in store.query_sparse("c", "s", [q_sparse], 8, filter=flt)[0]]]
    # The dense ranking restricted to odd ids, computed directly.
    scores = dense @ q_dense
    odd = [i for i in np.argsort(-scores).tolist() if i % 2 == 1][:8]
    expect = _rrf([odd, sparse_ids], 2)
    got = store.query_fusion(
        "c", [Prefetch("d", q_dense, 8), Prefetch("s", q_sparse, 8)], limit=50, filter=flt
    )
    assert all(h.id % 2 == 1 for h in got)
    assert {h.id: pytest.approx(h.score, rel=1e-5) for h in got} == expect
    assert not any("group" not in h.payload for h in got)
    bare = store.query_fusion(
        "c", [Prefetch("d", q_dense, 8)], limit=5, filter=flt, with_payload=False
    )
    assert [h.id for h in bare] == odd[:5] and all(h.payload == {} for h in bare)


def test_dbsf_rescales_each_ranking(store: Store) -> None:
    dense, _ = _fill(store)
    q_dense = dense[5]
    q_sparse = SparseVector(indices=np.array([1, 4, 9]), values=np.array([0.5, 1.0, 0.2]))
    (dh,) = store.query_dense("c", "d", q_dense[None, :], 10)
    (sh,) = store.query_sparse("c", "s", [q_sparse], 10)

    def norm(hits: list[tuple[int, float]]) -> dict[int, float]:
        s = np.array([x for _, x in hits], dtype=np.float64)
        mean, std = s.mean(), s.std(ddof=1)
        lo, hi = mean - 3 * std, mean + 3 * std
        return {i: (x - lo) / (hi - lo) for i, x in hits}

    expect: dict[int, float] = {}
    for part in (norm(dh), norm([(h.id, h.score) for h in sh])):
        for i, x in part.items():
            expect[i] = expect.get(i, 0.0) + x
    got = store.query_fusion(
        "c", [Prefetch("d", q_dense, 10), Prefetch("s", q_sparse, 10)], limit=40, fusion="dbsf"
    )
    assert {h.id: pytest.approx(h.score, abs=1e-4) for h in got} == expect


def test_empty_sparse_prefetches_are_left_out(store: Store) -> None:
    dense, _ = _fill(store)
    empty = SparseVector(indices=np.array([3]), values=np.array([0.0]))
    only = store.query_fusion("c", [Prefetch("d", dense[0], 5), Prefetch("s", empty, 5)], 5)
    assert [h.id for h in only] == [i for i, _ in store.query_dense("c", "d", dense[:1], 5)[0]]
    assert store.query_fusion("c", [Prefetch("s", empty, 5)], 5) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"limit": 0}, "'limit' parameter of Store.query_fusion"),
        ({"fusion": "sum"}, "'fusion' parameter of Store.query_fusion must be one of 'rrf'"),
        ({"rrf_k": 0}, "'rrf_k' parameter"),
        ({"prefetches": []}, "'prefetches' parameter"),
        ({"prefetches": [Prefetch("d", np.zeros((2, 6)), 3)]}, "1-D vector"),
        ({"prefetches": [Prefetch("d", np.ones(6), 0)]}, "'limit' parameter of Prefetch"),
    ],
)
def test_bad_arguments(store: Store, kwargs: dict, match: str) -> None:
    _fill(store)
    args = {"prefetches": [Prefetch("d", np.ones(6, np.float32), 3)], "limit": 3} | kwargs
    with pytest.raises(InvalidParameterError, match=match):
        store.query_fusion("c", **args)


def test_no_fusion_is_one_plain_query(store: Store) -> None:
    dense, sparse = _fill(store)
    q = dense[4] + 0.2 * dense[9]
    (expect,) = store.query_dense("c", "d", q[None, :], 7)
    got = store.query_fusion("c", [Prefetch("d", q, 50)], 7, fusion=None)
    assert [h.id for h in got] == [i for i, _ in expect]
    assert [h.score for h in got] == pytest.approx([s for _, s in expect], abs=1e-5)
    assert all(h.payload["i"] == h.id for h in got)
    flt = {"group": "even"}
    (sp,) = store.query_sparse("c", "s", [sparse[2]], 5, filter=flt)
    got = store.query_fusion("c", [Prefetch("s", sparse[2], 5)], 5, fusion=None, filter=flt)
    assert [(h.id, pytest.approx(h.score, abs=1e-5)) for h in got] == [(h.id, h.score) for h in sp]
    with pytest.raises(InvalidParameterError, match="exactly one prefetch"):
        store.query_fusion("c", [Prefetch("d", q, 5), Prefetch("s", sparse[0], 5)], 5, fusion=None)
