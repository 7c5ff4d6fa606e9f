"""The benchmark-only anchor indexes (benchmarks/indexes): recall bars, edits, errors, doctests.

The same checks as the library's paths (tests/anchor_index_checks.py); each path's recall bar
is the one docs/PERFORMANCE.md states for it.
"""

from __future__ import annotations

import doctest
import re

import numpy as np
import pytest

import benchmarks.indexes
from asif_qdrant.anchor_index import METHODS as LIBRARY_METHODS
from asif_qdrant.errors import InvalidParameterError
from benchmarks.indexes import (
    BASELINE_METHODS,
    METHODS,
    QdrantIndex,
    baselines,
    make_index,
    qdrant_index,
    quantized,
)
from tests import anchor_index_checks as checks
from tests.anchor_index_checks import data, small
from tests.floats import assert_topk_match, dot_rounding

__all__ = ["data", "small"]  # module-scoped fixtures, shared

#: recall@k bar (mean over queries) of each path, as documented.
RECALL_BAR = {
    "official": 1.0,
    "numpy": 1.0,
    "qdrant-exact": 1.0,
    "int8-rescore": 0.99,
    "bf16-rescore": 0.99,
    "binary-rescore": 0.97,
    "qdrant-sq": 0.99,
    "qdrant-bq": 0.93,
    "qdrant-hnsw": 0.97,
}


@pytest.mark.parametrize("method", ["int8-rescore", "bf16-rescore", "binary-rescore"])
def test_in_memory_paths_meet_their_recall_bar(method, data):
    anchors, queries, true_ids, true_sims = data
    index = make_index(method).build(np.arange(len(anchors)), anchors)
    ids, sims = index.topk(queries, checks.K)
    assert ids.shape == sims.shape == (len(queries), checks.K)
    checks.check_quality(
        method, RECALL_BAR[method], ids, sims, anchors, queries, true_ids, true_sims
    )


@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_baselines_are_exact_up_to_float32_near_ties(method, data):
    """official and numpy return the exact top-k: ids may differ only among near-ties."""
    anchors, queries, true_ids, true_sims = data
    index = make_index(method).build(np.arange(len(anchors)), anchors)
    ids, sims = index.topk(queries, checks.K)
    checks.check_quality(method, 1.0, ids, sims, anchors, queries, true_ids, true_sims)
    assert_topk_match(true_ids, true_sims, ids, sims, tol=2 * dot_rounding(anchors.shape[1]))


def test_official_merges_chunks_like_one_pass(data):
    """The official recipe over many small chunks equals one pass (up to near-ties)."""
    anchors, queries, _, _ = data
    one = make_index("official", chunk=len(anchors)).build(np.arange(len(anchors)), anchors)
    many = make_index("official", chunk=3_000).build(np.arange(len(anchors)), anchors)
    a, b = one.topk(queries, 100), many.topk(queries, 100)
    assert_topk_match(*a, *b, tol=2 * dot_rounding(anchors.shape[1]))


@pytest.mark.parametrize("method", ["qdrant-exact", "qdrant-sq", "qdrant-bq", "qdrant-hnsw"])
def test_qdrant_paths_meet_their_recall_bar(method, small):
    anchors, queries, true_ids, true_sims = small
    with make_index(method) as index:
        index.build(np.arange(len(anchors)), anchors)
        ids, sims = index.topk(queries, 200)
        checks.check_quality(
            method, RECALL_BAR[method], ids, sims, anchors, queries, true_ids, true_sims
        )
        folder = index.path
    assert not folder.exists(), "a temporary shard folder is removed on close"


@pytest.mark.parametrize(
    "method", ["official", "numpy", "int8-rescore", "binary-rescore", "qdrant-exact"]
)
def test_add_and_delete(method, small):
    checks.check_add_and_delete(make_index(method), RECALL_BAR[method], small)


@pytest.mark.parametrize("method", ["official", "numpy", "int8-rescore", "binary-rescore"])
def test_k_larger_than_n_returns_all_anchors(method):
    checks.check_k_larger_than_n(make_index(method))


def test_make_index_builds_every_method_and_delegates_to_the_library():
    assert set(LIBRARY_METHODS) < set(METHODS)
    for method in METHODS:
        with make_index(method, device="cpu" if method == "torch" else None) as index:
            assert index.method == method
    assert make_index("auto", n=10, device="cpu").method == "exact"
    with pytest.raises(InvalidParameterError, match=re.escape("'method' parameter of make_index")):
        make_index("faiss")
    with pytest.raises(InvalidParameterError, match="'mode' parameter"):
        QdrantIndex("pq")  # type: ignore[arg-type]


@pytest.mark.parametrize("module", [benchmarks.indexes, baselines, quantized, qdrant_index])
def test_doctests(module):
    """The examples in the docstrings (benchmarks/ is not among the doctest paths)."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
