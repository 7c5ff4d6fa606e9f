"""The near-tie rule of tests/floats.py: it lets rounding swap ties, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from tests.floats import assert_topk_match, dot_rounding, weight_rounding

pytestmark = pytest.mark.blas  # run again under OPENBLAS_CORETYPE=Haswell (scripts/test.sh)


def test_a_swap_inside_a_near_tie_passes() -> None:
    assert_topk_match(
        [[1, 2, 3]], [[0.9, 0.5, 0.5 - 1e-8]], [[1, 3, 2]], [[0.9, 0.5, 0.5]], tol=1e-7
    )


def test_a_tie_at_the_kth_place_may_change_membership() -> None:
    assert_topk_match([[1, 2, 3]], [[0.9, 0.5, 0.3]], [[1, 2, 4]], [[0.9, 0.5, 0.3]], tol=1e-7)


@pytest.mark.parametrize(
    ("ids_b", "scores_b"),
    [
        ([[2, 1, 3]], [[0.9, 0.5, 0.3]]),  # swap of two clearly different scores
        ([[1, 2, 4]], [[0.9, 0.5, 0.3]]),  # a member replaced although 0.4 != 0.3
        ([[1, 2, 3]], [[0.9, 0.5, 0.3 + 1e-6]]),  # a score moved beyond rounding
    ],
)
def test_anything_else_fails(ids_b: list[list[int]], scores_b: list[list[float]]) -> None:
    with pytest.raises(AssertionError):
        assert_topk_match([[1, 2, 3]], [[0.9, 0.5, 0.4]], ids_b, scores_b, tol=1e-7)


def test_the_bounds_hold_for_two_summation_orders() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 64)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = a[::-1].copy()
    exact = (a.astype(np.float64) * b.astype(np.float64)).sum(axis=1)
    forward = np.array([np.float32(0)] * 200)
    for j in range(64):  # one order, in float32
        forward = (forward + a[:, j] * b[:, j]).astype(np.float32)
    assert np.abs(forward - exact).max() <= dot_rounding(64)
    assert np.abs(np.einsum("ij,ij->i", a, b) - exact).max() <= dot_rounding(64)
    assert weight_rounding(np.array([[0.9, 0.5]]), 8.0, 64)[0] > 0
