"""Crossing the modality gap (asif_qdrant.retriever.crossgap): caption-side and inverted queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asif_qdrant import ASIF
from asif_qdrant.errors import InvalidInputError
from asif_qdrant.relative import l2_normalize, relative_topk
from asif_qdrant.retriever.crossgap import inverted_embeddings
from tests.conftest import ColorImageEncoder, HashTextEncoder

K, P = 6, 8.0


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    img = z @ rng.normal(size=(3, 10)) + 0.4 * rng.normal(size=(n, 10))
    txt = z @ rng.normal(size=(3, 7)) + 0.4 * rng.normal(size=(n, 7))
    return l2_normalize(img), l2_normalize(txt)


def _dense(x: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """ASIF relative vectors as dense (m, n_anchors) arrays (anchor id = row)."""
    idx, val = relative_topk(x, anchors, k=K, p=P)
    out = np.zeros((len(x), len(anchors)))
    np.put_along_axis(out, idx, val, axis=1)
    return out


def _model(path: Path) -> ASIF:
    return ASIF(
        path=path,
        k=K,
        p=P,
        image_encoder="precomputed/image",
        text_encoder="precomputed/text",
        show_progress_bar=False,
    )


def test_inverted_embeddings_formula() -> None:
    w = np.array([[0.8, 0.6, 0.0]])
    side = np.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    np.testing.assert_allclose(inverted_embeddings(w, side), [[0.8, 0.6]], atol=1e-6)
    assert not inverted_embeddings(np.zeros((1, 3)), side).any()


def test_invert_and_caption_equal_a_direct_numpy_computation(tmp_path: Path) -> None:
    a_img, a_txt = _data(50, seed=0)
    items, captions = _data(12, seed=1)
    queries, _ = _data(3, seed=2)
    with _model(tmp_path / "m") as asif:
        asif.add_anchor_embeddings(a_img, a_txt)
        asif.index_embeddings("cat", items, "image", caption_embeddings=captions)
        item_vecs = _dense(items, a_img)
        q_vecs = _dense(queries, a_img)

        # (a) caption side: the image query's vector against the captions' text vectors.
        expect = q_vecs @ _dense(captions, a_txt).T
        got = asif.search_embeddings("cat", queries, "image", target="caption", limit=12)
        for row, hits in enumerate(got):
            assert {h.id: pytest.approx(h.score, abs=1e-5) for h in hits} == {
                j: s for j, s in enumerate(expect[row]) if s > 0
            }

        # (b) inversion: weighted mean of the top anchors' captions, then a text vector.
        inverted = l2_normalize(q_vecs @ a_txt)
        expect = _dense(inverted, a_txt) @ item_vecs.T
        got = asif.search_embeddings("cat", queries, "image", query_via="invert", limit=12)
        for row, hits in enumerate(got):
            assert {h.id: pytest.approx(h.score, abs=1e-5) for h in hits} == {
                j: s for j, s in enumerate(expect[row]) if s > 0
            }
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

        # The plain image -> image search is unchanged.
        expect = q_vecs @ item_vecs.T
        (hits,) = asif.search_embeddings("cat", queries[:1], "image", limit=12)
        assert {h.id: pytest.approx(h.score, abs=1e-5) for h in hits} == {
            j: s for j, s in enumerate(expect[0]) if s > 0
        }


def test_caption_vectors_stay_exact_through_anchor_edits(tmp_path: Path) -> None:
    a_img, a_txt = _data(60, seed=3)
    items, captions = _data(15, seed=4)
    captions[[2, 5]] = np.nan  # two images without a caption
    with _model(tmp_path / "a") as edited:
        edited.add_anchor_embeddings(a_img[:40], a_txt[:40])
        edited.index_embeddings("cat", items, "image", caption_embeddings=captions)
        edited.add_anchor_embeddings(a_img[40:], a_txt[40:])
        edited.delete_anchors([1, 4, 45])
        keep = [i for i in range(60) if i not in (1, 4, 45)]
        stored = {
            r.id: r.sparse.get("asif_caption")
            for r in edited.store.scroll("cat", with_vectors=["asif_caption"])
        }
        assert stored[2] is None and stored[5] is None
        expect = _dense(np.nan_to_num(captions), a_txt[keep])
        for j in range(15):
            if j in (2, 5):
                continue
            got = np.zeros(60)
            got[stored[j].indices.astype(int)] = stored[j].values
            np.testing.assert_allclose(got[keep], expect[j], atol=1e-5)
            assert not got[[1, 4, 45]].any()
        assert edited.last_edit is not None and edited.last_edit.operation == "delete"


def test_index_with_raw_captions(tmp_path: Path) -> None:
    from PIL import Image

    colors = [(255, 0, 0), (0, 200, 0), (0, 0, 255), (250, 250, 0), (0, 0, 0), (255, 255, 255)]
    images = [Image.new("RGB", (8, 8), c) for c in colors]
    words = ["red", "green", "blue", "yellow", "black", "white"]
    with ASIF(
        path=tmp_path / "m",
        k=3,
        image_encoder=ColorImageEncoder(),
        text_encoder=HashTextEncoder(),
        show_progress_bar=False,
    ) as asif:
        asif.add_anchors(images, [f"a {w} square" for w in words])
        ids = asif.index("cat", images=images[:3], captions=["a red thing", None, "blue"])
        recs = asif.store.retrieve("cat", ids, with_vectors=["asif_caption"])
        assert [r.payload.get("caption") for r in recs] == ["a red thing", None, "blue"]
        assert ["asif_caption" in r.sparse for r in recs] == [True, False, True]
        (hits,) = asif.search_batch("cat", [images[0]], target="caption")
        assert {h.id for h in hits} <= {ids[0], ids[2]}
        with pytest.raises(InvalidInputError, match="one caption \\(or None\\) per image"):
            asif.index("cat", images=images[:2], captions=["x"])
        with pytest.raises(InvalidInputError, match="SparseVector query"):
            asif.search("cat", asif.embed_texts(["red"])[0], query_via="invert")


def test_reindex_restores_caption_and_csa_vectors(tmp_path: Path) -> None:
    """A full re-index (the repair after an interrupted edit) rewrites the extra vectors too."""
    from asif_qdrant.store.base import Record
    from asif_qdrant.types import SparseVector

    a_img, a_txt = _data(60, seed=5)
    items, captions = _data(10, seed=6)
    with ASIF(
        path=tmp_path / "m",
        k=K,
        p=P,
        image_encoder="precomputed/image",
        text_encoder="precomputed/text",
        show_progress_bar=False,
        csa_dim=4,
    ) as asif:
        asif.add_anchor_embeddings(a_img, a_txt)
        asif.index_embeddings("cat", items, "image", caption_embeddings=captions)
        before = asif.store.retrieve("cat", list(range(10)), with_vectors=True)
        # Damage item 3's caption and CSA vectors, as an edit killed half-way could leave them.
        rec = before[3]
        bad = SparseVector(np.array([0], np.uint64), np.array([1.0], np.float32))
        asif.store.upsert(
            "cat",
            [
                Record(
                    rec.id,
                    rec.payload,
                    dense={**rec.dense, "csa": -np.asarray(rec.dense["csa"])},
                    sparse={**rec.sparse, "asif_caption": bad},
                )
            ],
        )
        asif.reindex("cat")
        after = asif.store.retrieve("cat", list(range(10)), with_vectors=True)
    for b, a in zip(before, after, strict=True):
        np.testing.assert_allclose(a.dense["csa"], b.dense["csa"], atol=1e-5)
        caption_a, caption_b = a.sparse["asif_caption"], b.sparse["asif_caption"]
        assert caption_a.to_dict_weights().keys() == caption_b.to_dict_weights().keys()
        np.testing.assert_allclose(caption_a.values, caption_b.values, atol=1e-5)
