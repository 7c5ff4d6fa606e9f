"""Checks shared by the tests of every anchor index (the library's and the benchmark's).

Every path runs on the same structured synthetic embeddings (``benchmarks.synthetic``, which
mimic the statistics of real MiniLM / EfficientNet embeddings) and is compared with the exact
top-k; the module-scoped fixtures ``data`` and ``small`` are imported by the test modules.
"""

from __future__ import annotations

import numpy as np
import pytest

from asif_qdrant.anchor_index import AnchorIndex, exact_topk, recall_at_k, sparse_cosine
from asif_qdrant.errors import InvalidInputError
from asif_qdrant.relative import l2_normalize, relative_weights
from benchmarks.synthetic import clustered_embeddings

K = 800
P = 8.0

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def data() -> Data:
    """20k anchors (d=128), 32 held-out queries, and their exact top-k."""
    anchors, queries = clustered_embeddings(20_000, 128, n_queries=32, seed=11)
    ids, sims = exact_topk(queries, anchors, K)
    return anchors, queries, ids, sims


@pytest.fixture(scope="module")
def small() -> Data:
    """4k anchors (d=64) for the Qdrant-engine paths (their builds are the slow part)."""
    anchors, queries = clustered_embeddings(4_000, 64, n_queries=16, seed=12)
    ids, sims = exact_topk(queries, anchors, 200)
    return anchors, queries, ids, sims


def check_quality(
    method: str, bar: float, got_ids, got_sims, anchors, queries, true_ids, true_sims
) -> None:
    """Recall@k at least ``bar`` (and cosine >= 0.999 when ``bar >= 0.99``), exact sims, sorted."""
    rec = recall_at_k(true_ids, got_ids)
    assert rec.mean() >= bar, (method, rec.mean(), rec.min())
    cos = sparse_cosine(
        true_ids, relative_weights(true_sims, P), got_ids, relative_weights(got_sims, P)
    )
    if bar >= 0.99:
        assert cos.mean() >= 0.999, (method, cos.mean(), cos.min())
    # the similarities returned are the exact cosines of the returned anchors
    q = l2_normalize(queries)
    exact = np.einsum("md,mkd->mk", q, anchors[got_ids])
    np.testing.assert_allclose(got_sims, exact, atol=2e-5)
    assert (np.diff(got_sims, axis=1) <= 1e-7).all(), "rows must be sorted best first"


def check_add_and_delete(index: AnchorIndex, bar: float, small: Data) -> None:
    """Half the anchors built, half added, a third deleted: recall within 0.02 of ``bar``."""
    anchors, queries, _, _ = small
    n = len(anchors)
    half = n // 2
    with index:
        index.build(np.arange(half), anchors[:half])
        index.add(np.arange(half, n), anchors[half:])
        assert len(index) == n
        ids, _ = index.topk(queries, 100)
        true_ids, _ = exact_topk(queries, anchors, 100)
        assert recall_at_k(true_ids, ids).mean() >= bar - 0.02
        with pytest.raises(InvalidInputError, match="already in the index"):
            index.add([3], anchors[:1])
        gone = np.arange(0, n, 3)
        assert index.delete(gone) == len(gone)
        assert index.delete(gone) == 0  # unknown ids are ignored
        assert len(index) == n - len(gone)
        ids, _ = index.topk(queries, 100)
        assert not np.isin(ids, gone).any(), "a deleted anchor was returned"
        keep = np.setdiff1d(np.arange(n), gone)
        true_rows, _ = exact_topk(queries, anchors[keep], 100)
        assert recall_at_k(keep[true_rows], ids).mean() >= bar - 0.02


def check_k_larger_than_n(index: AnchorIndex) -> None:
    """With k above the anchor count, every anchor comes back."""
    anchors, queries = clustered_embeddings(50, 16, n_queries=2, seed=1)
    ids, _ = index.build(np.arange(50), anchors).topk(queries, 80)
    assert ids.shape == (2, 50)
    assert all(sorted(row) == list(range(50)) for row in ids.tolist())
