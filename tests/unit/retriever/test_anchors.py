"""``ASIF(anchor_search=...)``: the in-memory anchor index behind relative vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asif_qdrant import ASIF, InvalidParameterError
from asif_qdrant.anchor_index import ExactIndex, IVFIndex, recall_at_k, sparse_cosine
from asif_qdrant.relative import relative_topk
from asif_qdrant.retriever.anchors import anchor_index

K = 20


def clustered(rng: np.random.Generator, n: int, d: int, centers: int = 16) -> np.ndarray:
    c = rng.normal(size=(centers, d))
    return (c[rng.integers(0, centers, n)] + 0.7 * rng.normal(size=(n, d))).astype(np.float32)


def model(path: Path, mode: str, k: int = K) -> ASIF:
    return ASIF(
        path=path,
        k=k,
        image_encoder="precomputed/image",
        text_encoder="precomputed/text",
        show_progress_bar=False,
        anchor_search=mode,
    )


def as_arrays(vecs, k: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((len(vecs), k), -1, np.int64)
    w = np.zeros((len(vecs), k))
    for r, v in enumerate(vecs):
        ids[r, : len(v)] = v.indices.astype(np.int64)
        w[r, : len(v)] = v.values
    return ids, w


@pytest.mark.parametrize("mode", ["auto", "exact", "qdrant"])
def test_exact_modes_equal_relative_topk(tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(1)
    anchors, queries = clustered(rng, 600, 24), clustered(rng, 40, 24)
    with model(tmp_path, mode) as asif:
        asif.add_anchor_embeddings(anchors, rng.normal(size=(600, 8)))
        got = asif.relative_from_embeddings(queries, "image")
        idx, val = relative_topk(queries, anchors, k=K, p=8.0)
        for row, v in enumerate(got):
            want = {int(i): float(x) for i, x in zip(idx[row], val[row], strict=True) if x > 0}
            have = v.to_dict_weights()
            assert have.keys() == want.keys()
            np.testing.assert_allclose([have[i] for i in want], list(want.values()), atol=1e-5)
        index = anchor_index(asif.state, "image")
        if mode == "qdrant":
            assert index is None
        else:
            assert isinstance(index, ExactIndex)  # "auto" on a CPU


def test_ivf_meets_the_recall_bar_through_asif(tmp_path: Path) -> None:
    """The structured synthetic data of the benchmark (docs/PERFORMANCE.md), at k = 100."""
    from benchmarks.synthetic import clustered_embeddings

    rng = np.random.default_rng(2)
    anchors, queries = clustered_embeddings(20_000, 128, n_queries=64, seed=2)
    k = 100
    with model(tmp_path, "ivf", k=k) as asif:
        asif.add_anchor_embeddings(anchors, rng.normal(size=(len(anchors), 4)))
        got = asif.relative_from_embeddings(queries, "image")
        assert isinstance(anchor_index(asif.state, "image"), IVFIndex)
    idx, val = relative_topk(queries, anchors, k=k, p=8.0)
    got_ids, got_w = as_arrays(got, k)
    assert recall_at_k(idx, got_ids).mean() >= 0.99
    assert sparse_cosine(idx, val, got_ids, got_w).mean() >= 0.999


def test_edits_update_the_index_in_place_and_stay_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    img, txt = clustered(rng, 300, 16), rng.normal(size=(300, 8))
    queries = clustered(rng, 30, 16)
    with model(tmp_path / "a", "auto") as asif:
        asif.add_anchor_embeddings(img[:200], txt[:200])
        asif.index_embeddings("items", queries, "image")
        index = anchor_index(asif.state, "image")
        asif.add_anchor_embeddings(img[200:], txt[200:])
        asif.delete_anchors(range(0, 300, 3))
        assert anchor_index(asif.state, "image") is index  # followed the edits, not rebuilt
        assert len(index) == asif.anchor_count == 200
        got = asif.relative_from_embeddings(queries, "image")
        stored = asif.store.retrieve("items", list(range(30)), with_vectors=["asif"])
        catalog = {int(r.id): r.sparse["asif"].to_dict_weights() for r in stored}
    keep = [i for i in range(300) if i % 3]
    idx, val = relative_topk(queries, img[keep], k=K, p=8.0)
    for row, v in enumerate(got):
        want = {keep[int(i)]: float(x) for i, x in zip(idx[row], val[row], strict=True) if x > 0}
        for have in (v.to_dict_weights(), catalog[row]):
            assert have.keys() == want.keys()
            np.testing.assert_allclose([have[i] for i in want], list(want.values()), atol=1e-5)


@pytest.mark.parametrize("mode", ["auto", "qdrant"])
def test_equal_anchors_at_the_kth_place_go_to_the_lower_id(tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(4)
    base = clustered(rng, 50, 12)
    with model(tmp_path, mode, k=5) as asif:
        asif.add_anchor_embeddings(base, rng.normal(size=(50, 4)))
        (plain,) = asif.relative_from_embeddings(base[:1] + 0.01, "image")
        fifth = int(plain.indices[4])
        # Copies of the 5th anchor, added later (higher ids), tie with it exactly.
        asif.add_anchor_embeddings(
            np.repeat(base[fifth : fifth + 1], 3, 0), rng.normal(size=(3, 4))
        )
        (again,) = asif.relative_from_embeddings(base[:1] + 0.01, "image")
    assert again.indices.tolist() == plain.indices.tolist()


def test_bad_anchor_search_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match=r"'anchor_search'.*'auto'.*'qdrant'.*'hnsw'"):
        model(tmp_path, "hnsw")
