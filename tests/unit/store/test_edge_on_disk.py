"""``EdgeStore(on_disk=True)``: memory-mapped vectors and sparse index, same answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asif_qdrant.errors import StoreError
from asif_qdrant.store import CollectionSpec, EdgeStore, Record
from asif_qdrant.types import SparseVector


def _fill(store: EdgeStore, rng: np.random.Generator) -> None:
    store.create_collection("c", CollectionSpec(dense={"t": 8}, sparse=("asif",)))
    records = []
    for i in range(300):
        idx = rng.choice(50, size=6, replace=False)
        records.append(
            Record(
                i,
                {"i": i},
                dense={"t": rng.normal(size=8).astype(np.float32)},
                sparse={"asif": SparseVector(idx, rng.random(6))},
            )
        )
    store.upsert("c", records)


def test_on_disk_store_answers_like_the_ram_store_and_after_reopening(tmp_path: Path) -> None:
    queries_d = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    queries_s = [SparseVector(np.array([1, 7, 30]), np.array([0.5, 0.3, 0.8]))] * 2
    answers = []
    for on_disk in (False, True):
        path = tmp_path / str(on_disk)
        store = EdgeStore(path, on_disk=on_disk)
        _fill(store, np.random.default_rng(0))
        first = (
            store.query_dense("c", "t", queries_d, limit=10),
            store.query_sparse("c", "asif", queries_s, 10),
        )
        store.optimize("c")  # merges the appendable segments: the same answers after it
        assert (
            store.query_dense("c", "t", queries_d, limit=10),
            store.query_sparse("c", "asif", queries_s, 10),
        ) == first
        store.close()
        config = json.loads((path / "collections" / "c" / "edge_config.json").read_text())
        placement = {
            config["vectors"]["t"].get("memory"),
            config["sparse_vectors"]["asif"].get("memory"),
        }
        assert placement == ({"cached"} if on_disk else {None})
        reopened = EdgeStore(path, on_disk=on_disk)
        again = (
            reopened.query_dense("c", "t", queries_d, limit=10),
            reopened.query_sparse("c", "asif", queries_s, 10),
        )
        reopened.close()
        assert again == first
        answers.append(first)
    ram, disk = answers
    for a, b in zip(ram, disk, strict=True):
        assert [[h[0] if isinstance(h, tuple) else h.id for h in row] for row in a] == [
            [h[0] if isinstance(h, tuple) else h.id for h in row] for row in b
        ]


def test_an_engine_panic_is_a_store_error(tmp_path: Path) -> None:
    """A damaged file makes the engine panic (pyo3's PanicException, a BaseException that
    ``except Exception`` misses): the store boundary reports it as a StoreError (#19)."""
    with EdgeStore(tmp_path) as store:
        store.create_collection("c", CollectionSpec(dense={"v": 4}))
        store.upsert("c", [Record(i, {}, dense={"v": np.ones(4, np.float32)}) for i in range(9)])
    (status,) = tmp_path.glob("collections/c/segments/*/vector_storage-v/vectors/status.dat")
    status.write_bytes(b"")
    with EdgeStore(tmp_path) as store, pytest.raises(StoreError, match="Cannot open") as e:
        store.count("c")
    assert type(e.value.__cause__).__name__ == "PanicException"
    assert not isinstance(e.value.__cause__, Exception)
