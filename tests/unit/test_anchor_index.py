"""The anchor-search paths of asif_qdrant.anchor_index: exactness, recall bars, edits, errors.

Every path is run on the same structured synthetic embeddings (benchmarks.synthetic, which
mimic the statistics of real MiniLM / EfficientNet embeddings) and compared with the exact
top-k (tests/anchor_index_checks.py, shared with the benchmark-only indexes' tests in
tests/benchmarks). Each path's recall bar below is the one docs/PERFORMANCE.md states for it;
the default path (``exact`` on a CPU, at every size) is exact, and the approximate ones must
reach recall@k >= 0.99 and a sparse-vector cosine >= 0.999 (mean over queries).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from asif_qdrant.anchor_index import (
    METHODS,
    ExactIndex,
    IVFIndex,
    IVFPCAIndex,
    choose_method,
    exact_topk,
    make_index,
    recall_at_k,
    relative_vectors,
)
from asif_qdrant.errors import AnchorSetError, InvalidInputError, InvalidParameterError
from asif_qdrant.relative import l2_normalize, relative_topk
from benchmarks.synthetic import clustered_embeddings
from tests.anchor_index_checks import (
    K,
    P,
    check_add_and_delete,
    check_k_larger_than_n,
    check_quality,
    data,
    small,
)
from tests.floats import assert_topk_match, weight_rounding

__all__ = ["data", "small"]  # module-scoped fixtures, shared

#: recall@k bar (mean over queries) of each path, as documented; the defaults need 0.99.
RECALL_BAR = {"exact": 1.0, "torch": 1.0, "ivf": 0.99, "ivf-pca": 0.99}
#: Options of the paths under test: torch on the CPU, ivf-pca's reduced stage at any batch.
OPTIONS = {"torch": {"device": "cpu"}, "ivf-pca": {"reduced_batch": 10_000}}
DEFAULTS = sorted({choose_method(10, device="cpu"), choose_method(10**7, device="cpu")})


@pytest.mark.parametrize("method", ["exact", "ivf", "ivf-pca", "torch"])
def test_in_memory_paths_meet_their_recall_bar(method, data):
    anchors, queries, true_ids, true_sims = data
    options = OPTIONS.get(method, {})
    index = make_index(method, **options).build(np.arange(len(anchors)), anchors)
    ids, sims = index.topk(queries, K)
    assert ids.shape == sims.shape == (len(queries), K)
    check_quality(method, RECALL_BAR[method], ids, sims, anchors, queries, true_ids, true_sims)


@pytest.mark.parametrize("method", DEFAULTS)
def test_default_paths_meet_the_bar_on_a_second_data_set(method):
    """The defaults again, on other data (d=384, other seed): recall >= 0.99, cos >= 0.999."""
    anchors, queries = clustered_embeddings(25_000, 384, n_queries=24, seed=21)
    true_ids, true_sims = exact_topk(queries, anchors, K)
    index = make_index(method).build(np.arange(len(anchors)), anchors)
    ids, sims = index.topk(queries, K)
    check_quality(method, RECALL_BAR[method], ids, sims, anchors, queries, true_ids, true_sims)


@pytest.mark.blas
def test_exact_index_equals_relative_topk(data):
    """The exact path is the paper's recipe: same anchors and weights as relative_topk."""
    anchors, queries, _, _ = data
    ids = np.arange(100, 100 + len(anchors))  # anchor ids need not be row numbers
    index = ExactIndex().build(ids, anchors * 3.0)  # any norm is accepted
    got = relative_vectors(index, queries, K, P)
    rows, weights = relative_topk(queries, anchors, K, P)
    # Same anchors with the same weights, up to float32 rounding: the two products round a
    # similarity differently on some BLAS kernels (Haswell), so two anchors may swap places
    # (or the k-th place) only inside a near-tie, as tests/floats.py defines it.
    sims = np.take_along_axis(l2_normalize(queries) @ l2_normalize(anchors).T, rows, axis=1)
    tol = weight_rounding(sims, P, anchors.shape[1])
    keep = [w > 0 for w in weights]
    want_ids = [ids[r[k]] for r, k in zip(rows, keep, strict=True)]
    want_w = [w[k] for w, k in zip(weights, keep, strict=True)]
    got_ids = [v.indices.astype(np.int64) for v in got]
    assert_topk_match(got_ids, [v.values for v in got], want_ids, want_w, tol=tol)


def test_exact_threshold_selection_matches_full_sort():
    """The sampled-threshold scan returns exactly the top-k of a full sort (n > sample)."""
    anchors, queries = clustered_embeddings(120_000, 32, n_queries=8, seed=5)
    rows, sims = exact_topk(queries, anchors, 50)
    full = queries @ anchors.T
    order = np.argsort(-full, axis=1, kind="stable")[:, :50]
    np.testing.assert_allclose(sims, np.take_along_axis(full, order, 1), atol=1e-6)
    assert recall_at_k(order, rows).min() == 1.0


def test_ivf_calibrates_nprobe_and_reports_it(data):
    anchors, queries, true_ids, _ = data
    index = IVFIndex().build(np.arange(len(anchors)), anchors)
    index.topk(queries[:1], K)
    cal = index.calibration[K]
    assert 1 <= cal["nprobe"] <= index.lists
    assert cal["calibration_recall"] >= index.target_recall
    # a fixed, small nprobe is honoured and gives a visibly lower recall
    few = IVFIndex(nprobe=8).build(np.arange(len(anchors)), anchors)
    true100, _ = exact_topk(queries, anchors, 100)
    ids, _ = few.topk(queries, 100)
    assert recall_at_k(true100, ids).mean() < 0.9
    # when the probed lists hold fewer than k anchors, every list is scored: still complete
    one = IVFIndex(nprobe=1).build(np.arange(len(anchors)), anchors)
    ids, _ = one.topk(queries, K)
    assert recall_at_k(true_ids, ids).mean() == 1.0


def test_ivf_single_and_batched_queries_agree(data):
    anchors, queries, _, _ = data
    index = IVFIndex().build(np.arange(len(anchors)), anchors)
    batch_ids, batch_sims = index.topk(queries[:6], K)
    for i in range(6):
        one_ids, one_sims = index.topk(queries[i : i + 1], K)
        np.testing.assert_allclose(one_sims[0], batch_sims[i], atol=1e-6)
        assert recall_at_k(batch_ids[i : i + 1], one_ids)[0] >= 0.999


@pytest.mark.parametrize("method", ["exact", "ivf", "ivf-pca", "torch"])
def test_add_and_delete(method, small):
    options = OPTIONS.get(method, {})
    check_add_and_delete(make_index(method, **options), RECALL_BAR[method], small)


def test_ivf_retrains_after_the_anchor_count_doubles(small):
    anchors, queries, _, _ = small
    index = IVFIndex().build(np.arange(1000), anchors[:1000])
    index.topk(queries[:1], 50)
    lists_before = index.lists
    index.add(np.arange(1000, len(anchors)), anchors[1000:])
    ids, _ = index.topk(queries, 50)
    assert index.lists > lists_before  # retrained for 4x the anchors
    true_ids, _ = exact_topk(queries, anchors, 50)
    assert recall_at_k(true_ids, ids).mean() >= 0.98


@pytest.mark.parametrize("method", ["exact", "ivf", "ivf-pca"])
def test_k_larger_than_n_returns_all_anchors(method):
    check_k_larger_than_n(make_index(method))


def test_relative_vectors_drop_zero_weights():
    index = ExactIndex().build([7, 8, 9], np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    vec = relative_vectors(index, np.array([[1.0, 0.2]]), k=3, p=2.0)[0]
    assert vec.indices.tolist() == [7, 8]  # anchor 9 has a negative similarity
    assert np.isclose(np.linalg.norm(vec.values), 1.0)


def test_choose_method_and_make_index():
    # "auto" is exact on a CPU at every size (the approximate paths are one argument away)
    assert {choose_method(n, device="cpu") for n in (0, 299_999, 300_000, 10**7)} == {"exact"}
    assert choose_method(10, device="cuda") == "torch"
    for method in METHODS:
        assert make_index(method, device="cpu" if method == "torch" else None).method == method
    with pytest.raises(InvalidParameterError, match=re.escape("'method' parameter of make_index")):
        make_index("faiss")


def test_errors_name_the_bad_value():
    index = ExactIndex()
    with pytest.raises(AnchorSetError, match="holds no anchors"):
        index.topk(np.ones((1, 4)), 3)
    index.build([0, 1], np.eye(2))
    with pytest.raises(InvalidInputError, match="dim 2"):
        index.topk(np.ones((1, 3)), 1)
    with pytest.raises(InvalidInputError, match="Row 0 holds NaN"):
        index.topk(np.array([[np.nan, 1.0]]), 1)
    with pytest.raises(InvalidParameterError, match="'k' parameter"):
        index.topk(np.ones((1, 2)), 0)
    with pytest.raises(InvalidInputError, match="distinct"):
        ExactIndex().build([1, 1], np.eye(2))
    with pytest.raises(InvalidInputError, match="one id per embedding row"):
        ExactIndex().build([1, 2, 3], np.eye(2))
    with pytest.raises(InvalidInputError, match=">= 0"):
        ExactIndex().build([-1, 2], np.eye(2))
    with pytest.raises(InvalidParameterError, match="'target_recall' parameter"):
        IVFIndex(target_recall=1.5)


@pytest.mark.slow
def test_ivf_recall_bar_at_300k_anchors():
    """The approximate large-n path at a size where it pays (slow: ~1-2 minutes)."""
    anchors, queries = clustered_embeddings(350_000, 384, n_queries=128, seed=9)
    true_ids, true_sims = exact_topk(queries, anchors, K)
    index = make_index("ivf").build(np.arange(len(anchors)), anchors)
    ids, sims = index.topk(queries, K)
    check_quality("ivf", RECALL_BAR["ivf"], ids, sims, anchors, queries, true_ids, true_sims)


@pytest.mark.parametrize("n", [500, 70_000])
def test_exact_ties_at_the_kth_place_go_to_the_lower_id(n):
    """Duplicate anchors tie exactly: the lower anchor id wins, as in ASIF's engine path."""
    rng = np.random.default_rng(0)
    anchors = rng.normal(size=(n, 16)).astype(np.float32)
    query = rng.normal(size=(1, 16)).astype(np.float32)
    order = np.argsort(-(l2_normalize(query) @ l2_normalize(anchors).T)[0])
    anchors[order[:12]] = anchors[order[0]]  # 12 copies of the best anchor: a 12-way tie
    ids = rng.permutation(np.arange(10 * n, 11 * n))  # ids unrelated to the row order
    index = ExactIndex().build(ids, anchors)
    index.delete(ids[order[-5:]])  # swap-removes move rows: storage order != id order
    got, _ = index.topk(query, 5)
    assert got[0].tolist() == sorted(ids[order[:12]].tolist())[:5]


def test_ivf_pca_calibrates_its_candidates_and_counts_its_memory(data):
    """The reduced first stage: C calibrated per k, rescored sims exact, memory all counted."""
    anchors, queries, true_ids, true_sims = data
    index = IVFPCAIndex(dims=32, reduced_batch=len(queries)).build(np.arange(len(anchors)), anchors)
    ids, sims = index.topk(queries, K)
    cal = index.calibration[K]
    assert K <= cal["candidates"] <= len(anchors)
    assert index.describe()["dims"] == 32
    check_quality("ivf-pca", 0.99, ids, sims, anchors, queries, true_ids, true_sims)
    held = len(anchors) * (128 + 32) * 4  # the full rows and the reduced ones, at least
    assert held <= index.memory_bytes() <= 1.5 * held
    # a fixed candidate count is honoured: C = k is the reduced ranking alone, lower recall
    few = IVFPCAIndex(dims=8, candidates=K, reduced_batch=99)
    few.build(np.arange(len(anchors)), anchors)
    assert recall_at_k(true_ids, few.topk(queries, K)[0]).mean() < 0.99
    # batches above reduced_batch skip the reduced stage: the lists scanned in full, as ivf
    few.reduced_batch = len(queries) - 1
    assert recall_at_k(true_ids, few.topk(queries, K)[0]).mean() >= 0.99


def test_ivf_pca_breaks_exact_ties_by_the_lower_id():
    """Duplicates of one anchor tie exactly; the lower ids win, whatever the storage order."""
    anchors, queries = clustered_embeddings(6_000, 32, n_queries=1, seed=3)
    order = np.argsort(-(l2_normalize(queries) @ anchors.T)[0])
    anchors[order[:12]] = anchors[order[0]]
    ids = np.random.default_rng(1).permutation(np.arange(50_000, 56_000))
    index = IVFPCAIndex(n_lists=40, dims=24, candidates=1000).build(ids, anchors)
    index.delete(ids[order[-5:]])
    got, _ = index.topk(queries, 5)
    assert got[0].tolist() == sorted(ids[order[:12]].tolist())[:5]
