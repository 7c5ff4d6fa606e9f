"""relative_search: the model's path over an anchor index (ties at the k-th place, batches)."""

from __future__ import annotations

import numpy as np
import pytest

from asif_qdrant.anchor_index import make_index, relative_search
from asif_qdrant.anchor_index.base import TIE_EXTRA
from asif_qdrant.relative import l2_normalize
from benchmarks.synthetic import clustered_embeddings


@pytest.mark.parametrize("method", ["exact", "ivf-pca"])
def test_a_tie_group_longer_than_the_extra_candidates_goes_to_the_lower_ids(method):
    """3 x TIE_EXTRA copies straddle the k-th place: widened in one search, lower ids win."""
    anchors, queries = clustered_embeddings(5_000, 32, n_queries=3, seed=8)
    q = l2_normalize(queries)
    order = np.argsort(-(q[:1] @ anchors.T)[0])
    k = 10
    copies = order[k - 3 : k - 3 + 3 * TIE_EXTRA]
    anchors[copies] = anchors[order[k - 3]]
    ids = np.random.default_rng(2).permutation(np.arange(9_000, 14_000))
    options = {"n_lists": 40, "dims": 24, "candidates": 2_000} if method == "ivf-pca" else {}
    index = make_index(method, **options).build(ids, anchors)
    calls = []

    def rescore(found: np.ndarray, query: np.ndarray) -> np.ndarray:
        calls.append(len(found))
        rows = np.searchsorted(ids, found, sorter=np.argsort(ids))
        return l2_normalize(anchors[np.argsort(ids)][rows]).astype(np.float64) @ query

    batch, boundary = relative_search(index, q, k, 8.0, rescore=rescore)
    tied = sorted(ids[copies].tolist())
    assert batch[0].indices.tolist()[k - 3 :] == tied[:3]
    assert boundary[0] == pytest.approx(float(q[0] @ anchors[order[k - 3]]), abs=1e-5)
    # each query of the batch gets what it gets alone
    for row in range(len(q)):
        (alone,), _ = relative_search(index, q[row : row + 1], k, 8.0, rescore=rescore)
        assert alone.indices.tolist() == batch[row].indices.tolist()
        np.testing.assert_allclose(alone.values, batch[row].values, atol=1e-6)


def test_ivf_pca_through_the_model_meets_the_bars_and_follows_edits(tmp_path):
    """anchor_search="ivf-pca": recall and cosine bars, then an anchor edit applied in place."""
    from asif_qdrant import ASIF
    from asif_qdrant.anchor_index import IVFPCAIndex, recall_at_k, sparse_cosine
    from asif_qdrant.relative import relative_topk
    from asif_qdrant.retriever.anchors import anchor_index

    rng = np.random.default_rng(2)
    anchors, queries = clustered_embeddings(20_000, 128, n_queries=32, seed=2)
    k = 100
    with ASIF(
        path=tmp_path,
        k=k,
        image_encoder="precomputed/image",
        text_encoder="precomputed/text",
        show_progress_bar=False,
        anchor_search="ivf-pca",
    ) as asif:
        asif.add_anchor_embeddings(anchors, rng.normal(size=(len(anchors), 4)))
        got = asif.relative_from_embeddings(queries, "image")
        index = anchor_index(asif.state, "image")
        assert isinstance(index, IVFPCAIndex)
        # an edit: copies of each query's k-th anchor, added later (higher ids), tie with it
        # exactly and lose: nothing changes
        kth = [int(v.indices[k - 1]) for v in got[:4]]
        asif.add_anchor_embeddings(anchors[kth], rng.normal(size=(4, 4)))
        again = asif.relative_from_embeddings(queries[:4], "image")
        assert anchor_index(asif.state, "image") is index  # followed in place, not rebuilt
    idx, val = relative_topk(queries, anchors, k=k, p=8.0)
    ids = np.array(
        [np.pad(v.indices.astype(np.int64), (0, k - len(v)), constant_values=-1) for v in got]
    )
    w = np.array([np.pad(v.values, (0, k - len(v))) for v in got])
    assert recall_at_k(idx, ids).mean() >= 0.99
    assert sparse_cosine(idx, val, ids, w).mean() >= 0.999
    for before, after in zip(got[:4], again, strict=True):
        assert after.indices.tolist() == before.indices.tolist()
