"""Property-based tests of relative_topk (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from asif_qdrant.relative import relative_topk

# No subnormals: scaling one by 0.5 can underflow to 0 and turn a query into another problem.
finite = st.floats(min_value=-10, max_value=10, allow_nan=False, allow_subnormal=False, width=32)


@st.composite
def problems(draw):
    d = draw(st.integers(1, 8))
    n = draw(st.integers(1, 40))
    m = draw(st.integers(0, 5))
    anchors = draw(arrays(np.float32, (n, d), elements=finite))
    queries = draw(arrays(np.float32, (m, d), elements=finite))
    # Rows of all zeros have no direction; keep them out of the anchors.
    anchors[np.linalg.norm(anchors, axis=1) == 0] = 1.0
    k = draw(st.integers(1, 50))
    p = draw(st.sampled_from([0.5, 1.0, 2.0, 3.7, 8.0]))
    return queries, anchors, k, p


@settings(max_examples=200, deadline=None)
@given(problems())
def test_shape_sort_norm_and_membership(problem) -> None:
    queries, anchors, k, p = problem
    idx, val = relative_topk(queries, anchors, k=k, p=p)
    n = len(anchors)
    assert idx.shape == val.shape == (len(queries), min(k, n))
    assert idx.dtype == np.int64 and val.dtype == np.float32
    assert np.isfinite(val).all() and (val >= 0).all()
    for row in range(len(queries)):
        assert len(set(idx[row].tolist())) == idx.shape[1]  # distinct anchors
        assert ((idx[row] >= 0) & (idx[row] < n)).all()
        assert (np.diff(val[row]) <= 1e-6).all()  # sorted by decreasing weight
        norm = float(np.linalg.norm(val[row]))
        assert norm == 0.0 or abs(norm - 1.0) < 1e-4


@settings(max_examples=100, deadline=None)
@given(problems())
def test_kept_anchors_are_the_most_similar(problem) -> None:
    queries, anchors, k, p = problem
    idx, _ = relative_topk(queries, anchors, k=k, p=p)
    # The reference normalises in float64: a float32 norm of a tiny row (1e-30) underflows.
    q, a = queries.astype(np.float64), anchors.astype(np.float64)
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    sims = qn @ an.T
    for row in range(len(queries)):
        kept = sims[row, idx[row]]
        dropped = np.delete(sims[row], idx[row])
        if dropped.size:
            assert kept.min() >= dropped.max() - 1e-5


@settings(max_examples=100, deadline=None)
@given(problems(), st.floats(min_value=0.01, max_value=100))
def test_invariant_to_scaling_inputs(problem, scale) -> None:
    queries, anchors, k, p = problem
    a = relative_topk(queries, anchors, k=k, p=p)
    b = relative_topk(queries * scale, anchors * scale, k=k, p=p)
    np.testing.assert_allclose(a[1], b[1], atol=1e-4)
