"""Metrics on hand-built score matrices whose answers are worked out by hand."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from asif_qdrant.errors import InvalidInputError, InvalidParameterError
from hypothesis import given, settings
from hypothesis import strategies as st

from asif_qdrant_evaluation.metrics import (
    accuracy,
    accuracy_from_counts,
    chance_mean_rank,
    chance_recall,
    majority_accuracy,
    mean_rank,
    mean_rank_from_counts,
    rank_counts,
    recall_at_k,
    recall_from_counts,
    recalls,
)


def test_perfect_ranking() -> None:
    scores = np.eye(4) + 0.01 * np.arange(4)  # the diagonal is always the best column
    targets = [0, 1, 2, 3]
    assert recall_at_k(scores, targets, 1) == 1.0
    assert mean_rank(scores, targets) == 1.0
    assert accuracy(scores, targets) == 1.0


def test_worst_ranking() -> None:
    # Target always scores lowest among 5 items: rank 5.
    scores = np.tile(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), (3, 1))
    targets = [0, 0, 0]
    assert recall_at_k(scores, targets, 1) == 0.0
    assert recall_at_k(scores, targets, 4) == 0.0
    assert recall_at_k(scores, targets, 5) == 1.0
    assert mean_rank(scores, targets) == 5.0
    assert accuracy(scores, targets) == 0.0


def test_known_ranks_by_hand() -> None:
    # query 0: target (col 2) has 0.5; above it: 0.9, 0.7 -> rank 3
    # query 1: target (col 0) has 0.8; above it: nothing -> rank 1
    # query 2: target (col 3) has 0.1; above it: 0.2, 0.3, 0.4 -> rank 4
    scores = np.array(
        [
            [0.9, 0.7, 0.5, 0.1],
            [0.8, 0.2, 0.3, 0.4],
            [0.2, 0.3, 0.4, 0.1],
        ]
    )
    targets = [2, 0, 3]
    g, t = rank_counts(scores, targets)
    assert g.tolist() == [2, 0, 3] and t.tolist() == [1, 1, 1]
    assert recall_at_k(scores, targets, 1) == pytest.approx(1 / 3)
    assert recall_at_k(scores, targets, 3) == pytest.approx(2 / 3)
    assert recall_at_k(scores, targets, 4) == 1.0
    assert mean_rank(scores, targets) == pytest.approx((3 + 1 + 4) / 3)
    assert recalls(scores, targets, ks=(1, 3)) == {
        "R@1": pytest.approx(1 / 3),
        "R@3": pytest.approx(2 / 3),
    }


def test_ties_count_as_broken_at_random() -> None:
    # Target tied with 3 others for first place: P(rank 1) = 1/4, P(rank <= 2) = 1/2.
    scores = np.array([[0.5, 0.5, 0.5, 0.5, 0.1]])
    assert recall_at_k(scores, [2], 1) == 0.25
    assert recall_at_k(scores, [2], 2) == 0.5
    assert recall_at_k(scores, [2], 4) == 1.0
    assert mean_rank(scores, [2]) == 2.5  # mean of ranks 1..4
    assert accuracy(scores, [2]) == 0.25
    # One item above a tie of two: ranks 2 or 3.
    scores = np.array([[0.9, 0.5, 0.5]])
    assert recall_at_k(scores, [1], 1) == 0.0
    assert recall_at_k(scores, [1], 2) == 0.5
    assert mean_rank(scores, [1]) == 2.5
    assert accuracy(scores, [1]) == 0.0


def test_all_zero_scores_are_chance() -> None:
    # A query sharing no anchor with anything scores 0 everywhere: exactly chance.
    scores = np.zeros((1, 10))
    assert recall_at_k(scores, [3], 1) == pytest.approx(chance_recall(10, 1))
    assert recall_at_k(scores, [3], 5) == pytest.approx(chance_recall(10, 5))
    assert mean_rank(scores, [3]) == chance_mean_rank(10)
    assert accuracy(scores, [3]) == pytest.approx(0.1)


def test_order_of_tied_items_does_not_matter() -> None:
    a = np.array([[0.3, 0.0, 0.0, 0.0, 0.7]])
    b = a[:, [0, 3, 2, 1, 4]]  # permute the tied zeros; target 1 moves to column 3
    assert recall_at_k(a, [1], 2) == recall_at_k(b, [3], 2)
    assert mean_rank(a, [1]) == mean_rank(b, [3])


def test_counts_functions() -> None:
    assert recall_from_counts([0, 1, 0], [1, 2, 3], 1) == pytest.approx((1 + 0 + 1 / 3) / 3)
    assert mean_rank_from_counts([0, 1, 0], [1, 2, 3]) == pytest.approx((1 + 2.5 + 2) / 3)
    assert accuracy_from_counts([0, 1, 0], [1, 1, 4]) == pytest.approx((1 + 0 + 0.25) / 3)
    assert np.isnan(recall_from_counts([], [], 1))
    with pytest.raises(InvalidInputError, match="'tied' must be >= 1"):
        recall_from_counts([0], [0], 1)


def test_chance_and_majority() -> None:
    assert chance_recall(200, 1) == 0.005
    assert chance_recall(3, 10) == 1.0
    assert chance_mean_rank(200) == 100.5
    assert majority_accuracy([2, 2, 2, 0, 1]) == 0.6
    assert np.isnan(majority_accuracy([]))


def test_empty_and_nan() -> None:
    assert np.isnan(recall_at_k(np.zeros((0, 3)), [], 1))
    assert np.isnan(accuracy(np.zeros((0, 3)), []))
    with pytest.raises(InvalidInputError, match=r"must not hold NaN\. Row 1"):
        accuracy(np.array([[0.1, 0.2], [np.nan, 0.0]]), [0, 1])


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(InvalidInputError, match=re.escape("2-D array (queries, items)")):
        recall_at_k(np.zeros(3), [0], 1)
    with pytest.raises(InvalidInputError, match="one column index per query"):
        recall_at_k(np.zeros((2, 3)), [0], 1)
    with pytest.raises(InvalidInputError, match=re.escape("in [0, 3)")):
        recall_at_k(np.zeros((1, 3)), [3], 1)
    with pytest.raises(InvalidParameterError, match="The 'k' parameter of recall_at_k"):
        recall_at_k(np.zeros((1, 3)), [0], 0)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=0, max_value=2**31 - 1),
)
def test_properties(m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(m, n)).astype(float)  # many ties
    targets = rng.integers(0, n, size=m)
    values = [recall_at_k(scores, targets, k) for k in range(1, n + 1)]
    assert all(0 <= v <= 1 for v in values)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))
    assert values[-1] == pytest.approx(1.0)
    assert 1 <= mean_rank(scores, targets) <= n
    assert accuracy(scores, targets) == pytest.approx(values[0])
    # The expected rank equals the average of recall complements: E[rank] = 1 + sum(1 - R@k).
    assert mean_rank(scores, targets) == pytest.approx(1 + sum(1 - v for v in values[:-1]))


def test_tolerance_turns_float_noise_into_ties() -> None:
    # float32 (Qdrant) and float64 (numpy) give 'The letter q.' and 'The letter Q.' scores
    # 1e-7 apart, in opposite orders; within the tolerance both orders give the same counts.
    float32_path = np.array([[0.38780424, 0.38780418, 0.3861236]])
    float64_path = np.array([[0.38780394, 0.38780411, 0.3861238]])
    assert rank_counts(float32_path, [0])[0].tolist() != rank_counts(float64_path, [0])[0].tolist()
    a = rank_counts(float32_path, [0], tolerance=1e-6)
    b = rank_counts(float64_path, [0], tolerance=1e-6)
    assert [x.tolist() for x in a] == [x.tolist() for x in b] == [[0], [2]]
    with pytest.raises(InvalidInputError, match="'tolerance' must be a number >= 0"):
        rank_counts(float32_path, [0], tolerance=-1.0)


# -------------------------------------------------------------------------------------------
# Several relevant items per query: average precision and precision@k
# -------------------------------------------------------------------------------------------


def _brute_force(scores: np.ndarray, relevant: np.ndarray, k: int) -> tuple[float, float]:
    """AP and P@k averaged over every order of the tied items (tie-breaking at random)."""
    aps, pks = [], []
    n = len(scores)
    for perm in itertools.permutations(range(n)):
        # sort by score, ties in the order of this permutation
        order = sorted(range(n), key=lambda i: (-scores[i], perm.index(i)))
        rel = relevant[order]
        hits = np.cumsum(rel)
        ranks = np.flatnonzero(rel) + 1
        aps.append(float(np.mean(hits[ranks - 1] / ranks)))
        pks.append(float(rel[:k].sum() / k))
    return float(np.mean(aps)), float(np.mean(pks))


def test_average_precision_by_hand() -> None:
    from asif_qdrant_evaluation.metrics import average_precision, precision_at_k

    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]])
    relevant = np.array([[1, 0, 1, 0], [1, 0, 0, 0]], dtype=bool)
    ap = average_precision(scores, relevant)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert ap[1] == pytest.approx(1 / 4)  # the one relevant item is last
    assert precision_at_k(scores, relevant, 2).tolist() == [0.5, 0.0]
    assert precision_at_k(scores, relevant, 1).tolist() == [1.0, 0.0]
    # k beyond the items is capped: P@10 of 4 items with 2 relevant is 2/4
    assert precision_at_k(scores, relevant, 10)[0] == pytest.approx(0.5)


def test_average_precision_without_relevant_items_is_nan_and_skipped() -> None:
    from asif_qdrant_evaluation.metrics import average_precision, mean_average_precision

    scores = np.array([[0.9, 0.1], [0.5, 0.4]])
    relevant = np.array([[0, 1], [0, 0]], dtype=bool)
    ap = average_precision(scores, relevant)
    assert ap[0] == 0.5 and np.isnan(ap[1])
    assert mean_average_precision(scores, relevant) == 0.5


def test_valid_mask_leaves_out_the_query_itself() -> None:
    from asif_qdrant_evaluation.metrics import average_precision, precision_at_k

    # item 0 is the query itself: best score, marked relevant, but not ranked
    scores = np.array([[1.0, 0.2, 0.9, 0.5]])
    relevant = np.array([[1, 1, 0, 0]], dtype=bool)
    valid = np.array([[0, 1, 1, 1]], dtype=bool)
    assert average_precision(scores, relevant, valid=valid)[0] == pytest.approx(1 / 3)
    assert precision_at_k(scores, relevant, 1, valid=valid)[0] == 0.0
    assert average_precision(scores, relevant)[0] == 0.75  # without the mask: (1 + 2/4) / 2


@pytest.mark.parametrize(
    "scores, relevant",
    [
        ([0.0, 0.0, 0.0, 0.0], [1, 0, 0, 0]),
        ([0.5, 0.5, 0.5, 0.1, 0.1], [1, 0, 1, 1, 0]),
        ([0.9, 0.5, 0.5, 0.5, 0.2, 0.2], [0, 1, 1, 0, 1, 0]),
        ([0.3, 0.3, 0.3, 0.3, 0.3, 0.3], [1, 1, 0, 1, 0, 0]),
    ],
)
def test_expected_ap_and_precision_equal_every_tie_order_averaged(
    scores: list[float], relevant: list[int]
) -> None:
    from asif_qdrant_evaluation.metrics import average_precision, precision_at_k

    s, r = np.array(scores), np.array(relevant, dtype=bool)
    for k in (1, 2, 3):
        ap, pk = _brute_force(s, r, k)
        assert average_precision(s[None], r[None])[0] == pytest.approx(ap)
        assert precision_at_k(s[None], r[None], k)[0] == pytest.approx(pk)


def test_tolerance_merges_near_ties() -> None:
    from asif_qdrant_evaluation.metrics import average_precision

    s = np.array([[0.5, 0.5000001, 0.1]])
    r = np.array([[1, 0, 0]], dtype=bool)
    assert average_precision(s, r)[0] == 0.5
    assert average_precision(s, r, tolerance=1e-6)[0] == pytest.approx(0.75)


def test_relevance_metrics_reject_bad_input() -> None:
    from asif_qdrant_evaluation.metrics import average_precision, precision_at_k

    with pytest.raises(InvalidInputError, match="same shape"):
        average_precision(np.zeros((2, 3)), np.zeros((2, 2), dtype=bool))
    with pytest.raises(InvalidInputError, match="NaN"):
        average_precision(np.array([[np.nan, 1.0]]), np.array([[1, 0]], dtype=bool))
    with pytest.raises(InvalidParameterError):
        precision_at_k(np.zeros((1, 2)), np.ones((1, 2), dtype=bool), 0)
