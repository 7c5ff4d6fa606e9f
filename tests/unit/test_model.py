"""The ASIF class on every backend, with small deterministic encoders (no model downloads)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from asif_qdrant import (
    ASIF,
    AnchorSetError,
    CollectionNotFoundError,
    FingerprintMismatchError,
    InvalidInputError,
    InvalidParameterError,
    SparseVector,
    relative_topk,
)
from asif_qdrant.store import Store
from tests.conftest import ColorImageEncoder, HashTextEncoder, make_store

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "purple": (140, 30, 160),
    "orange": (240, 140, 20),
    "black": (10, 10, 10),
    "white": (250, 250, 250),
    "cyan": (30, 220, 220),
    "pink": (250, 150, 200),
}


def swatch(rgb, noise: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((16, 16, 3), rgb, dtype=np.int16) + rng.integers(-noise, noise + 1, (16, 16, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def clustered(rng, n, d, centers=12):
    c = rng.normal(size=(centers, d))
    return c[rng.integers(0, centers, n)] + 0.6 * rng.normal(size=(n, d))


def dense(v: SparseVector, ids: list[int]) -> np.ndarray:
    pos = {a: i for i, a in enumerate(ids)}
    out = np.zeros(len(ids), np.float32)
    for a, w in zip(v.indices.tolist(), v.values.tolist(), strict=True):
        out[pos[a]] = w
    return out


@pytest.fixture
def precomputed(store: Store) -> ASIF:
    return ASIF(
        store=store, k=20, image_encoder="precomputed/image", text_encoder="precomputed/text"
    )


def test_stored_vectors_equal_relative_topk(precomputed: ASIF) -> None:
    rng = np.random.default_rng(0)
    img_a, txt_a = clustered(rng, 300, 24), clustered(rng, 300, 16)
    ids = precomputed.add_anchor_embeddings(img_a, txt_a)
    assert ids == list(range(300))
    catalog = clustered(rng, 40, 24)
    item_ids = precomputed.index_embeddings("cat", catalog, "image")
    stored = precomputed.store.retrieve("cat", item_ids, with_vectors=True)
    idx, val = relative_topk(catalog, img_a, k=20, p=8.0)
    for row, rec in enumerate(stored):
        want = np.zeros(300, np.float32)
        want[np.asarray(ids)[idx[row]]] = val[row]
        np.testing.assert_allclose(dense(rec.sparse["asif"], ids), want, atol=1e-5)
        assert rec.payload["modality"] == "image"
    # Text queries use the text anchors.
    q = clustered(rng, 3, 16)
    vecs = precomputed.relative_from_embeddings(q, "text")
    idx, val = relative_topk(q, txt_a, k=20)
    for row, v in enumerate(vecs):
        want = np.zeros(300, np.float32)
        want[idx[row]] = val[row]
        np.testing.assert_allclose(dense(v, ids), want, atol=1e-5)


def test_search_scores_are_sparse_dot_products(precomputed: ASIF) -> None:
    rng = np.random.default_rng(1)
    precomputed.add_anchor_embeddings(clustered(rng, 200, 24), clustered(rng, 200, 16))
    catalog = clustered(rng, 30, 24)
    precomputed.index_embeddings("cat", catalog, "image")
    items = precomputed.relative_from_embeddings(catalog, "image")
    (query,) = precomputed.relative_from_embeddings(clustered(rng, 1, 16), "text")
    hits = precomputed.search("cat", query, limit=5)
    expected = sorted(((query.dot(v), i) for i, v in enumerate(items)), reverse=True)[:5]
    assert [h.id for h in hits] == [i for _, i in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for s, _ in expected], atol=1e-5)


def test_delete_anchors_never_reuses_ids(precomputed: ASIF) -> None:
    rng = np.random.default_rng(2)
    precomputed.add_anchor_embeddings(clustered(rng, 10, 8), clustered(rng, 10, 4))
    with pytest.raises(AnchorSetError, match=r"\[999\]"):
        precomputed.delete_anchors([3, 4, 999])
    assert precomputed.anchor_count == 10  # nothing deleted
    assert precomputed.delete_anchors([3, 4, 4]) == 2
    assert precomputed.anchor_count == 8
    assert [a["id"] for a in precomputed.list_anchors()] == [0, 1, 2, 5, 6, 7, 8, 9]
    new = precomputed.add_anchor_embeddings(clustered(rng, 2, 8), clustered(rng, 2, 4))
    assert new == [10, 11]
    ids, emb = precomputed.anchor_embeddings("text")
    assert ids == [0, 1, 2, 5, 6, 7, 8, 9, 10, 11] and emb.shape == (10, 4)
    vecs = precomputed.relative_from_embeddings(clustered(rng, 4, 8), "image")
    assert all(not ({3, 4} & set(v.indices.tolist())) for v in vecs)


def test_k_larger_than_anchor_count(precomputed: ASIF) -> None:
    rng = np.random.default_rng(3)
    precomputed.add_anchor_embeddings(clustered(rng, 5, 8), clustered(rng, 5, 4))
    (v,) = precomputed.relative_from_embeddings(clustered(rng, 1, 8), "image")
    assert 1 <= len(v) <= 5


def test_empty_anchor_set_is_a_clear_error(precomputed: ASIF) -> None:
    with pytest.raises(AnchorSetError, match="has no anchors"):
        precomputed.relative_from_embeddings(np.ones((1, 8)), "image")
    with pytest.raises(CollectionNotFoundError, match="index items into it"):
        precomputed.search("nothing-here", SparseVector(np.array([1]), np.array([1.0])))


def test_embedding_validation(precomputed: ASIF) -> None:
    rng = np.random.default_rng(4)
    precomputed.add_anchor_embeddings(clustered(rng, 5, 8), clustered(rng, 5, 4))
    with pytest.raises(InvalidInputError, match=r"image dim 8 of this model. Got shape \(1, 3\)"):
        precomputed.relative_from_embeddings(np.ones((1, 3)), "image")
    with pytest.raises(InvalidInputError, match="Row 0 holds NaN"):
        precomputed.add_anchor_embeddings(np.full((1, 8), np.nan), np.ones((1, 4)))
    with pytest.raises(InvalidInputError, match="2 images and 1 captions"):
        precomputed.add_anchor_embeddings(np.ones((2, 8)), np.ones((1, 4)))
    with pytest.raises(InvalidInputError, match="all zeros"):
        precomputed.add_anchor_embeddings(np.zeros((1, 8)), np.ones((1, 4)))
    assert precomputed.anchor_count == 5  # nothing was written by the failed calls


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "The 'k' parameter of ASIF must be an int >= 1. Got 0 instead."),
        ({"k": "800"}, "The 'k' parameter of ASIF must be an int >= 1. Got '800' instead."),
        ({"p": 0.0}, "The 'p' parameter of ASIF must be a finite float > 0. Got 0.0 instead."),
        ({"p": -8}, "The 'p' parameter of ASIF must be a finite float > 0. Got -8 instead."),
        ({"batch_size": 0}, "The 'batch_size' parameter of ASIF must be an int >= 1"),
        ({"name": "bad name!"}, "collection name must be"),
    ],
)
def test_constructor_validation(tmp_path: Path, kwargs, message) -> None:
    with pytest.raises(
        InvalidParameterError,
        match=re.escape(message),
    ):
        ASIF(path=tmp_path, **kwargs)


def test_exactly_one_backend(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="exactly one of 'path'"):
        ASIF()
    with pytest.raises(InvalidParameterError, match="Got 2 of them"):
        ASIF(path=tmp_path, store=make_store("edge", tmp_path))


def test_reopen_checks_fingerprint(backend: str, tmp_path: Path) -> None:
    store = make_store(backend, tmp_path)
    asif = ASIF(
        store=store, k=7, p=4.0, image_encoder=ColorImageEncoder(), text_encoder=HashTextEncoder()
    )
    asif.add_anchors([swatch(c, 10, i) for i, c in enumerate(COLORS.values())], list(COLORS))
    asif.close()
    again = ASIF(
        store=make_store(backend, tmp_path),
        image_encoder=ColorImageEncoder(),
        text_encoder=HashTextEncoder(),
    )
    assert (again.k, again.p, again.anchor_count) == (7, 4.0, len(COLORS))
    again.close()
    for kwargs in ({"text_encoder": HashTextEncoder(name="test/other")}, {"k": 8}):
        reopened = make_store(backend, tmp_path)
        with pytest.raises(FingerprintMismatchError) as err:
            ASIF(store=reopened, **kwargs)
        reopened.close()
        msg = str(err.value)
        if "text_encoder" in kwargs:
            assert "'test/hash-text'" in msg and "'test/other'" in msg
        else:
            assert "built with k=7, but was opened with k=8" in msg
    # Opened by path, a failed open releases the folder, so a correct open works right after.
    if backend == "edge":
        with pytest.raises(FingerprintMismatchError):
            ASIF(path=tmp_path / "edge", k=8)
        ASIF(path=tmp_path / "edge").close()


def test_text_to_image_search_and_classify_with_small_encoders(store: Store) -> None:
    asif = ASIF(store=store, k=5, image_encoder=ColorImageEncoder(), text_encoder=HashTextEncoder())
    names = list(COLORS)
    # Anchors: three swatches per colour, captioned with the colour name.
    anchors = [
        (swatch(COLORS[c], 25, 100 * j + i), f"{c}") for i, c in enumerate(names) for j in range(3)
    ]
    asif.add_anchors([a for a, _ in anchors], [c for _, c in anchors], source="swatches")
    catalog = [swatch(COLORS[c], 25, 9000 + i) for i, c in enumerate(names)]
    ids = asif.index("swatches", images=catalog, payloads=[{"color": c} for c in names])
    assert ids == list(range(len(names)))
    hits = asif.search_batch("swatches", names, limit=3, item_modality="image")
    top1 = [h[0].payload["color"] for h in hits]
    assert np.mean([t == c for t, c in zip(top1, names, strict=True)]) >= 0.8
    assert all(h[0].score > 0 for h in hits)
    predicted = asif.classify(catalog, names, templates=["{}"])
    scores = asif.classify_scores(catalog, names, templates=["{}"])
    assert scores.shape == (len(names), len(names))
    assert np.mean([p == c for p, c in zip(predicted, names, strict=True)]) >= 0.8
    # Filters restrict hits to matching payloads.
    (hits,) = asif.search_batch("swatches", ["red"], limit=5, filter={"color": ["blue", "green"]})
    assert {h.payload["color"] for h in hits} <= {"blue", "green"}
    # A text item is searchable too, and modality keeps it out of image hits.
    asif.index("swatches", texts=["red"])
    (hits,) = asif.search_batch("swatches", [catalog[0]], limit=20, item_modality="text")
    assert [h.payload["text"] for h in hits] == ["red"]


def test_classify_validation(precomputed: ASIF) -> None:
    with pytest.raises(InvalidParameterError, match="distinct"):
        precomputed.classify([], ["a", "a"])
    with pytest.raises(InvalidParameterError, match=re.escape("containing '{}'")):
        precomputed.classify([], ["a"], templates=["no slot"])


def test_index_refuses_model_collections(precomputed: ASIF) -> None:
    rng = np.random.default_rng(5)
    precomputed.add_anchor_embeddings(clustered(rng, 5, 8), clustered(rng, 5, 4))
    with pytest.raises(InvalidParameterError, match="belongs to the ASIF model"):
        precomputed.index_embeddings("asif_image_anchors", np.ones((1, 8)), "image")
    with pytest.raises(InvalidInputError, match="distinct"):
        precomputed.index_embeddings("c", np.ones((2, 8)), "image", ids=[1, 1])
