"""relative_topk against a direct numpy implementation of the paper's recipe."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from asif_qdrant.errors import InvalidInputError, InvalidParameterError
from asif_qdrant.relative import (
    Spread,
    check_power,
    l2_normalize,
    power_for_spread,
    relative_topk,
    relative_weights,
)
from tests.floats import assert_topk_match, weight_rounding

pytestmark = pytest.mark.blas  # run again under OPENBLAS_CORETYPE=Haswell (scripts/test.sh)


def reference(queries: np.ndarray, anchors: np.ndarray, k: int, p: float):
    """The recipe written out directly (float64, full similarity matrix, full sort)."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    a = anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
    sims = q @ a.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(sims, order, axis=1)
    w = np.clip(top, 0, None) ** p
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    return order, w, sims


def clustered(rng: np.random.Generator, n: int, d: int, centers: int = 20) -> np.ndarray:
    """Embeddings with structure (clusters), so that top-k similarities are mostly positive."""
    c = rng.normal(size=(centers, d))
    return c[rng.integers(0, centers, n)] + 0.7 * rng.normal(size=(n, d))


def assert_same_as_reference(queries, anchors, k, p):
    idx, val = relative_topk(queries, anchors, k=k, p=p)
    ref_idx, ref_val, sims = reference(queries, anchors, min(k, len(anchors)), p)
    assert idx.dtype == np.int64 and val.dtype == np.float32
    assert idx.shape == val.shape == ref_idx.shape
    assert np.abs(val - ref_val).max() < 1e-5
    for row in range(len(queries)):
        got, want = set(idx[row].tolist()), set(ref_idx[row].tolist())
        if got != want:
            # Only a tie at the k-th place (within float32 rounding) may swap members.
            kth = sims[row, ref_idx[row, -1]]
            swapped = np.array(sorted(got ^ want))
            assert np.abs(sims[row, swapped] - kth).max() < 1e-6, (row, swapped)
    # Rows are sorted by decreasing weight and unit norm.
    assert (np.diff(val, axis=1) <= 1e-7).all()
    assert np.allclose(np.linalg.norm(val, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("k", [1, 50, 800])
@pytest.mark.parametrize("n", [10, 1_000, 20_000])
def test_matches_reference(k: int, n: int) -> None:
    rng = np.random.default_rng(n * 1000 + k)
    anchors = clustered(rng, n, 48)
    queries = clustered(rng, 17, 48)
    assert_same_as_reference(queries, anchors, k, 8.0)


def test_matches_reference_200k_anchors() -> None:
    rng = np.random.default_rng(7)
    anchors = clustered(rng, 200_000, 32).astype(np.float32)
    queries = clustered(rng, 8, 32)
    for k in (1, 50, 800):
        assert_same_as_reference(queries, anchors, k, 8.0)


def test_blocking_does_not_change_result() -> None:
    rng = np.random.default_rng(1)
    anchors = clustered(rng, 5_000, 24)
    queries = clustered(rng, 9, 24)
    full = relative_topk(queries, anchors, k=100, p=8.0)
    tiny = relative_topk(queries, anchors, k=100, p=8.0, memory_budget=1)  # blocks of k rows
    # Blocks of other shapes may round a float32 similarity differently (the BLAS kernel and
    # its threads differ): the same anchors and weights up to float32 rounding, and two
    # anchors may swap only inside a near-tie (tests/floats.py defines both).
    sims = np.take_along_axis(l2_normalize(queries) @ l2_normalize(anchors).T, full[0], axis=1)
    tol = weight_rounding(sims, 8.0, anchors.shape[1])
    assert_topk_match(full[0], full[1], tiny[0], tiny[1], tol=tol)


@pytest.mark.parametrize("p", [0.5, 1.0, 2.5, 8.0])
def test_fractional_p_gives_no_nan_even_with_negative_similarities(p: float) -> None:
    rng = np.random.default_rng(3)
    anchors = rng.normal(size=(300, 16))  # unstructured: many negative similarities
    queries = rng.normal(size=(5, 16))
    idx, val = relative_topk(queries, anchors, k=300, p=p)
    assert np.isfinite(val).all()
    assert (val >= 0).all()
    # Negative similarities are clamped to 0: they get zero weight.
    sims = l2_normalize(queries) @ l2_normalize(anchors).T
    neg = np.take_along_axis(sims, idx, axis=1) < 0
    assert neg.any() and (val[neg] == 0).all()


def test_k_larger_than_n_returns_n_entries() -> None:
    rng = np.random.default_rng(4)
    idx, _ = relative_topk(rng.normal(size=(3, 8)), rng.normal(size=(6, 8)), k=800)
    assert idx.shape == (3, 6)
    assert sorted(idx[0].tolist()) == list(range(6))


def test_any_norm_is_accepted() -> None:
    rng = np.random.default_rng(5)
    anchors, queries = clustered(rng, 200, 16), clustered(rng, 4, 16)
    a = relative_topk(queries, anchors, k=20)
    b = relative_topk(queries * 37.0, anchors * rng.uniform(0.1, 9, size=(200, 1)), k=20)
    # Rescaled inputs normalise to vectors a rounding apart: near-ties may swap (tests/floats.py).
    sims = np.take_along_axis(l2_normalize(queries) @ l2_normalize(anchors).T, a[0], axis=1)
    tol = weight_rounding(sims, 8.0, anchors.shape[1])
    assert_topk_match(a[0], a[1], b[0], b[1], tol=tol)


def test_empty_queries() -> None:
    idx, val = relative_topk(np.zeros((0, 4)), np.eye(4), k=2)
    assert idx.shape == (0, 2) and val.shape == (0, 2)


def test_all_negative_row_has_zero_weights() -> None:
    anchors = np.array([[1.0, 0.0], [0.0, 1.0]])
    _, val = relative_topk(np.array([[-1.0, -1.0]]), anchors, k=2)
    assert (val == 0).all()


def test_memory_stays_within_budget() -> None:
    rng = np.random.default_rng(6)
    anchors = rng.normal(size=(200_000, 384)).astype(np.float32)
    queries = rng.normal(size=(64, 384)).astype(np.float32)
    budget = 64 * 1024**2
    tracemalloc.start()
    try:
        relative_topk(queries, anchors, k=800, memory_budget=budget)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The block temporaries (normalised block, similarities, argpartition) stay near budget.
    assert peak < 3 * budget, peak


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"k": 0}, InvalidParameterError, "The 'k' parameter of relative_topk must be an int >= 1"),
        ({"k": 2.5}, InvalidParameterError, "Got 2.5 instead"),
        ({"k": True}, InvalidParameterError, "Got True instead"),
        ({"p": 0}, InvalidParameterError, "The 'p' parameter of relative_topk must be a finite"),
        ({"p": -1.0}, InvalidParameterError, "Got -1.0 instead"),
        ({"p": float("nan")}, InvalidParameterError, "Got nan instead"),
    ],
)
def test_parameter_validation(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        relative_topk(np.ones((1, 3)), np.ones((4, 3)), **kwargs)


def test_input_validation() -> None:
    with pytest.raises(InvalidInputError, match=r"same dim\. Got 3 and 4"):
        relative_topk(np.ones((1, 3)), np.ones((2, 4)))
    with pytest.raises(InvalidInputError, match="Row 1 holds NaN or inf"):
        relative_topk(np.array([[1.0, 0.0], [np.nan, 1.0]]), np.ones((2, 2)))
    with pytest.raises(InvalidInputError, match="'anchors' must contain only finite"):
        relative_topk(np.ones((1, 2)), np.array([[np.inf, 1.0]]))
    with pytest.raises(InvalidInputError, match="2-D array of shape"):
        relative_topk(np.ones(3), np.ones((2, 3)))
    with pytest.raises(InvalidInputError, match="'anchors' is empty"):
        relative_topk(np.ones((1, 3)), np.ones((0, 3)))
    with pytest.raises(InvalidInputError, match="real numbers"):
        relative_topk(np.array([["a", "b"]]), np.ones((2, 2)))


def test_relative_weights_matches_formula() -> None:
    s = np.array([[0.9, 0.5, 0.1, -0.3]])
    w = np.clip(s, 0, None) ** 8
    np.testing.assert_allclose(relative_weights(s, 8), w / np.linalg.norm(w), rtol=1e-6)


# -- the spread rule (a p per vector) ------------------------------------------------------------
def _perplexity(row: np.ndarray, p: float) -> float:
    """Direct formula: exp of the entropy of s**p normalised to sum 1 (s clamped at 0)."""
    w = np.clip(row, 0, None) ** p
    q = w[w > 0] / w.sum()
    return float(np.exp(-(q * np.log(q)).sum()))


def test_power_for_spread_hits_the_target_perplexity() -> None:

    rng = np.random.default_rng(5)
    s = np.sort(rng.uniform(0.05, 0.8, size=(20, 50)), axis=1)[:, ::-1]
    for fraction in (0.1, 0.3, 0.6):
        p = power_for_spread(s, Spread(fraction))
        assert ((p > Spread.P_MIN) & (p < Spread.P_MAX)).all()
        for row, pr in zip(s, p, strict=True):
            assert _perplexity(row, pr) == pytest.approx(fraction * s.shape[1], rel=1e-6)
    # out of reach: all equal (perplexity = n at every p) -> the upper bound; one positive
    # similarity (perplexity 1 at every p) below a target > 1 -> the lower bound
    flat = power_for_spread(np.full((1, 10), 0.5), Spread(0.3))
    single = power_for_spread(np.array([[0.9, 0.0, -0.2, 0.0]]), Spread(0.5))
    assert flat.tolist() == [Spread.P_MAX] and single.tolist() == [Spread.P_MIN]


def test_relative_weights_with_a_spread_use_each_row_own_power() -> None:

    s = np.array([[0.9, 0.5, 0.4, 0.3, 0.1], [0.6, 0.59, 0.3, 0.2, -0.1]])
    w = relative_weights(s, Spread(0.4))
    p = power_for_spread(s, Spread(0.4))
    for row, pr, got in zip(s, p, w, strict=True):
        want = np.clip(row, 0, None) ** pr
        np.testing.assert_allclose(got, want / np.linalg.norm(want), atol=1e-7)
    assert p[0] != pytest.approx(p[1])  # two rows, two powers
    # the same rows one at a time give the same weights (no dependence on the batch)
    np.testing.assert_array_equal(relative_weights(s[1], Spread(0.4)), w[1])


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.01, float("nan")])
def test_check_power_refuses_a_fraction_outside_0_1(bad: float) -> None:

    with pytest.raises(InvalidParameterError, match=r"'p\.fraction'|fraction in \(0, 1\]"):
        check_power("p", "f", Spread(bad))
