"""The catalog benchmark (benchmarks/catalog.py) in a seconds-long version: its recall bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asif_qdrant.retriever.search import TWO_STAGE_CANDIDATES, TWO_STAGE_QUERY_NNZ
from benchmarks.catalog import catalog_table, parse_variant, worker_catalog
from benchmarks.synthetic import clustered_embeddings

TWO_STAGE = f"full/q{TWO_STAGE_QUERY_NNZ}c{TWO_STAGE_CANDIDATES}"


def test_two_stage_search_meets_the_recall_bar(tmp_path: Path) -> None:
    """recall@10 of the measured two-stage settings against exact full-vector scoring.

    Speed is printed, not asserted (the CPU is shared); the full benchmark is
    ``python -m benchmarks.catalog``.
    """
    anchors, queries = clustered_embeddings(4_000, 64, n_queries=40, seed=1)
    np.save(tmp_path / "a.npy", anchors)
    np.save(tmp_path / "q.npy", queries)
    spec = {
        "anchors": str(tmp_path / "a.npy"),
        "queries": str(tmp_path / "q.npy"),
        "items": 6_000,
        "unique_items": 3_000,  # the rest: jittered copies, as at 1M
        "queries_n": 40,
        "variants": ["full", TWO_STAGE, "m128"],
    }
    res = worker_catalog(spec)
    rows = {v["name"]: v for v in res["variants"]}
    print(catalog_table([res]))
    assert rows["full"]["recall_at_10"] == 1.0  # the engine's full search is exact
    assert rows[TWO_STAGE]["recall_at_10"] >= 0.99, rows[TWO_STAGE]
    assert res["collections"]["128"]["mean_nnz"] == 128
    assert 0.0 < rows["m128"]["recall_at_10"] <= 1.0


def test_variant_names() -> None:
    assert parse_variant("m64/q32c100") == {
        "name": "m64/q32c100",
        "item_nnz": 64,
        "query_nnz": 32,
        "candidates": 100,
    }
    assert parse_variant("full")["query_nnz"] is None
