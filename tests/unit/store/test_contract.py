"""One contract for the store interface, asserted against every backend."""

from __future__ import annotations

import numpy as np
import pytest

from asif_qdrant.errors import CollectionNotFoundError, InvalidParameterError, StoreError
from asif_qdrant.store import CollectionSpec, Record, Store
from asif_qdrant.types import SparseVector

SPEC = CollectionSpec(dense={"image": 4, "text": 3}, sparse=("asif",))


def unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x)


def sv(d: dict[int, float]) -> SparseVector:
    return SparseVector(indices=np.array(list(d)), values=np.array(list(d.values())))


def test_collections_lifecycle(store: Store) -> None:
    assert not store.has_collection("c")
    store.create_collection("c", SPEC)
    assert store.has_collection("c")
    assert store.collection_spec("c") == SPEC
    assert "c" in store.list_collections()
    with pytest.raises(StoreError, match="already exists"):
        store.create_collection("c", SPEC)
    store.delete_collection("c")
    assert not store.has_collection("c")
    store.delete_collection("c")  # idempotent


def test_missing_collection_is_a_clear_error(store: Store) -> None:
    with pytest.raises(CollectionNotFoundError, match="'nope'"):
        store.collection_spec("nope")
    with pytest.raises(CollectionNotFoundError):
        store.count("nope")


def test_bad_collection_name(store: Store) -> None:
    with pytest.raises(InvalidParameterError, match="collection name"):
        store.create_collection("../escape", SPEC)


def test_upsert_retrieve_scroll_count_delete(store: Store) -> None:
    store.create_collection("c", SPEC)
    recs = [
        Record(
            1,
            {"caption": "a"},
            dense={"image": unit([1, 0, 0, 0])},
            sparse={"asif": sv({3: 0.6, 5: 0.8})},
        ),
        Record(2, {"caption": "b"}, dense={"text": unit([0, 1, 0])}, sparse={"asif": sv({5: 1.0})}),
        Record(7, {"caption": "c"}, dense={"image": unit([1, 1, 0, 0])}),
    ]
    store.upsert("c", recs)
    assert store.count("c") == 3
    got = store.retrieve("c", [7, 1, 99], with_vectors=True)
    assert [r.id for r in got] == [7, 1]
    assert got[1].payload == {"caption": "a"}
    np.testing.assert_allclose(got[1].dense["image"], unit([1, 0, 0, 0]))
    assert got[1].sparse["asif"].to_dict_weights() == pytest.approx({3: 0.6, 5: 0.8})
    assert [r.id for r in store.scroll("c", batch_size=2)] == [1, 2, 7]
    store.delete("c", [1, 12345])
    assert store.count("c") == 2
    # Upsert replaces.
    store.upsert("c", [Record(2, {"caption": "B"}, sparse={"asif": sv({9: 1.0})})])
    assert store.retrieve("c", [2])[0].payload == {"caption": "B"}


def test_dense_query_is_exact_and_sorted(store: Store) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    store.create_collection("c", CollectionSpec(dense={"image": 4}))
    store.upsert("c", [Record(i, {}, dense={"image": x[i]}) for i in range(300)])
    q = rng.normal(size=(5, 4)).astype(np.float32)
    res = store.query_dense("c", "image", q, limit=50)
    sims = q @ x.T
    for row, hits in enumerate(res):
        ids = [h[0] for h in hits]
        assert ids == list(np.argsort(-sims[row], kind="stable")[:50])
        np.testing.assert_allclose([h[1] for h in hits], np.sort(sims[row])[::-1][:50], atol=1e-5)


def test_sparse_query_scores_are_dot_products(store: Store) -> None:
    store.create_collection("c", SPEC)
    store.upsert(
        "c",
        [
            Record(1, {"category": "x"}, sparse={"asif": sv({3: 0.6, 5: 0.8})}),
            Record(2, {"category": "y"}, sparse={"asif": sv({5: 1.0})}),
            Record(3, {"category": "y"}, sparse={"asif": sv({8: 1.0})}),
        ],
    )
    (hits,) = store.query_sparse("c", "asif", [sv({5: 0.5, 3: 0.5})], limit=10)
    assert [h.id for h in hits] == [1, 2]  # id 3 shares no anchor: not returned
    assert hits[0].score == pytest.approx(0.7) and hits[1].score == pytest.approx(0.5)
    assert hits[0].payload == {"category": "x"}
    (hits,) = store.query_sparse("c", "asif", [sv({5: 1.0})], limit=10, filter={"category": "y"})
    assert [h.id for h in hits] == [2]
    (hits,) = store.query_sparse(
        "c", "asif", [sv({5: 1.0, 8: 1.0})], limit=10, filter={"category": ["x", "y"]}
    )
    assert sorted(h.id for h in hits) == [1, 2, 3]
    # A query without any non-zero weight matches nothing.
    assert store.query_sparse("c", "asif", [sv({5: 0.0})], limit=10) == [[]]


def test_two_stage_sparse_query_rescores_the_pruned_query_candidates(store: Store) -> None:
    """prefetch=(nnz, candidates): the top-nnz query finds candidates, the full one scores."""
    store.create_collection("c", SPEC)
    store.upsert(
        "c",
        [
            Record(1, {"category": "x"}, sparse={"asif": sv({1: 0.6, 7: 0.8})}),
            Record(2, {"category": "y"}, sparse={"asif": sv({1: 0.1, 2: 0.995})}),
            Record(3, {"category": "y"}, sparse={"asif": sv({7: 1.0})}),
        ],
    )
    q = sv({1: 0.9, 7: 0.3, 2: 0.3})
    (full,) = store.query_sparse("c", "asif", [q], limit=10)
    assert [h.id for h in full] == [1, 2, 3]
    # The query's largest weight (anchor 1) finds items 1 and 2; the full query scores them.
    (two,) = store.query_sparse("c", "asif", [q], limit=10, prefetch=(1, 5))
    assert [h.id for h in two] == [1, 2]  # item 3 (anchor 7 only) is not a candidate
    assert [h.score for h in two] == pytest.approx([h.score for h in full[:2]])
    (two,) = store.query_sparse(
        "c", "asif", [q], limit=10, prefetch=(1, 5), filter={"category": "x"}
    )
    assert [h.id for h in two] == [1]
    # A query with at most nnz non-zeros runs in one stage: the same result.
    (same,) = store.query_sparse("c", "asif", [q], limit=10, prefetch=(3, 1))
    assert [h.id for h in same] == [h.id for h in full]


def test_bad_filter_value(store: Store) -> None:
    store.create_collection("c", SPEC)
    with pytest.raises(InvalidParameterError, match="filter value"):
        store.query_sparse("c", "asif", [sv({1: 1.0})], limit=1, filter={"a": 1.5})


def test_wrong_dimension_is_a_store_error(store: Store) -> None:
    store.create_collection("c", SPEC)
    with pytest.raises(StoreError, match="'c'"):
        store.upsert("c", [Record(1, {}, dense={"image": np.ones(3)})])


def test_string_uuid_ids(store: Store) -> None:
    store.create_collection("c", SPEC)
    pid = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"
    store.upsert("c", [Record(pid, {"a": 1}, sparse={"asif": sv({1: 1.0})})])
    assert store.retrieve("c", [pid])[0].payload == {"a": 1}
    (hits,) = store.query_sparse("c", "asif", [sv({1: 1.0})], limit=1)
    assert str(hits[0].id) == pid


def test_closed_store_refuses_work(store: Store) -> None:
    store.create_collection("c", SPEC)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count("c")


def test_find_by_payload_with_a_keyword_index(store: Store) -> None:
    store.create_collection("c", SPEC)
    store.create_payload_index("c", "key")  # a no-op where the backend has none
    dense = {"image": unit([1, 0, 0, 0])}
    store.upsert("c", [Record(i, {"key": f"k{i % 3}"}, dense=dense) for i in range(7)])
    found = store.find_by_payload("c", "key", ["k1", "k2", "k9"])
    assert sorted(r.id for r in found) == [1, 2, 4, 5]
    assert store.find_by_payload("c", "key", []) == []
    (rec,) = store.find_by_payload("c", "key", ["k0", "k0"])[:1]
    assert rec.payload == {"key": "k0"} and rec.dense == {}
