"""CSA and hybrid search in the ASIF model, against direct numpy computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asif_qdrant import ASIF
from asif_qdrant.csa import fit_csa
from asif_qdrant.errors import FingerprintMismatchError, InvalidInputError, InvalidParameterError
from asif_qdrant.relative import l2_normalize
from tests.conftest import make_store
from tests.helpers import precomputed_asif

D_IMG, D_TXT = 12, 8


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    img = z @ rng.normal(size=(4, D_IMG)) + 0.5 * rng.normal(size=(n, D_IMG))
    txt = z @ rng.normal(size=(4, D_TXT)) + 0.5 * rng.normal(size=(n, D_TXT))
    return img.astype(np.float32), txt.astype(np.float32)


def _model(store_kind: str, tmp_path: Path, **kw) -> ASIF:
    return precomputed_asif(
        store=make_store(store_kind, tmp_path), k=kw.pop("k", 6), csa_dim=kw.pop("csa_dim", 5), **kw
    )


def _direct_csa(img: np.ndarray, txt: np.ndarray, dim: int):
    return fit_csa(l2_normalize(img), l2_normalize(txt), sim_dim=dim)


def _indexed(asif: ASIF, img: np.ndarray, txt: np.ndarray, items: np.ndarray) -> ASIF:
    """The model with these anchor pairs and the image items in catalog "cat" (closed on error)."""
    try:
        asif.add_anchor_embeddings(img, txt)
        asif.index_embeddings("cat", items, "image")
    except BaseException:
        asif.close()
        raise
    return asif


@pytest.mark.parametrize("kind", ["edge", "client-local"])
def test_csa_scores_equal_the_numpy_similarity(kind: str, tmp_path: Path) -> None:
    n_anchor = 60 if kind == "edge" else 20
    img, txt = _data(n_anchor)
    items, _ = _data(15, seed=1)
    _, queries = _data(3, seed=2)
    with _indexed(_model(kind, tmp_path), img, txt, items) as asif:
        direct = _direct_csa(img, txt, 5)
        # Stored anchors, items and queries are unit vectors.
        sims = direct.similarity(l2_normalize(queries), "text", l2_normalize(items), "image")
        got = asif.search_embeddings("cat", queries, "text", method="csa", limit=15)
        for row, hits in enumerate(got):
            assert [h.id for h in hits] == np.argsort(-sims[row], kind="stable").tolist()
            np.testing.assert_allclose([h.score for h in hits], np.sort(sims[row])[::-1], atol=1e-4)
        # The model's own fit is the same as the direct one.
        np.testing.assert_allclose(asif.csa.rho, direct.rho, atol=1e-6)


def test_hybrid_is_the_rrf_fusion_of_both_rankings(tmp_path: Path) -> None:
    img, txt = _data(80)
    items, _ = _data(30, seed=3)
    _, queries = _data(4, seed=4)
    with _indexed(_model("edge", tmp_path), img, txt, items) as asif:
        sparse = asif.search_embeddings("cat", queries, "text", limit=8)
        dense = asif.search_embeddings("cat", queries, "text", method="csa", limit=8)
        hybrid = asif.search_embeddings(
            "cat", queries, "text", method="hybrid", limit=30, prefetch_limit=8
        )
        for a, b, h in zip(sparse, dense, hybrid, strict=True):
            expect: dict[int, float] = {}
            for ranking in (a, b):
                for rank, hit in enumerate(ranking):
                    expect[hit.id] = expect.get(hit.id, 0.0) + 1.0 / (2 + rank)
            assert {x.id: pytest.approx(x.score, rel=1e-5) for x in h} == expect
            assert [x.score for x in h] == sorted((x.score for x in h), reverse=True)


def test_refit_after_edits_equals_a_fresh_model(tmp_path: Path) -> None:
    img, txt = _data(70)
    extra_img, extra_txt = _data(10, seed=9)
    items, _ = _data(20, seed=5)
    texts = _data(6, seed=6)[1]
    edited = _indexed(_model("edge", tmp_path / "a"), img[:50], txt[:50], items)
    try:
        edited.index_embeddings("cat", texts, "text", ids=list(range(100, 106)))
        rho_before = edited.csa.rho.copy()
        edited.add_anchor_embeddings(img[50:], txt[50:])
        edited.add_anchor_embeddings(extra_img, extra_txt)
        edited.delete_anchors([50 + 20 + i for i in range(10)] + [3, 7])
        assert not np.allclose(edited.csa.rho, rho_before)
        keep = [i for i in range(70) if i not in (3, 7)]
        fresh = _indexed(_model("edge", tmp_path / "b"), img[keep], txt[keep], items)
        try:
            fresh.index_embeddings("cat", texts, "text", ids=list(range(100, 106)))
            np.testing.assert_allclose(edited.csa.rho, fresh.csa.rho, atol=1e-6)
            a = {r.id: r.dense["csa"] for r in edited.store.scroll("cat", with_vectors=["csa"])}
            b = {r.id: r.dense["csa"] for r in fresh.store.scroll("cat", with_vectors=["csa"])}
            assert a.keys() == b.keys()
            for pid in a:
                # Directions are defined up to a sign per component: compare |values|.
                np.testing.assert_allclose(np.abs(a[pid]), np.abs(b[pid]), atol=1e-4)
            _, q = _data(2, seed=8)
            for method in ("csa", "hybrid"):
                ra = edited.search_embeddings("cat", q, "text", method=method, limit=26)
                rb = fresh.search_embeddings("cat", q, "text", method=method, limit=26)
                for x, y in zip(ra, rb, strict=True):
                    # Same items with the same scores (RRF ties may come in any order).
                    assert {h.id: pytest.approx(h.score, abs=1e-4) for h in x} == {
                        h.id: h.score for h in y
                    }
        finally:
            fresh.close()
    finally:
        edited.close()


def test_settings_are_stored_and_checked(tmp_path: Path) -> None:
    img, txt = _data(30)
    asif = _model("edge", tmp_path, csa_dim=4)
    asif.add_anchor_embeddings(img, txt)
    asif.close()
    again = ASIF(path=tmp_path / "edge", show_progress_bar=False)
    try:
        assert again.fingerprint.csa_dim == 4 and again.csa.sim_dim == 4
    finally:
        again.close()
    with pytest.raises(FingerprintMismatchError, match="csa_dim=4"):
        ASIF(path=tmp_path / "edge", csa_dim=3)
    with pytest.raises(InvalidParameterError, match=r"'csa_dim' parameter of ASIF must be an int"):
        ASIF(path=tmp_path / "other", csa_dim=0)


def test_enabling_csa_later_migrates_catalogs(tmp_path: Path) -> None:
    img, txt = _data(30)
    items, _ = _data(8, seed=1)
    plain = precomputed_asif(path=tmp_path / "m", k=5)
    plain.add_anchor_embeddings(img, txt)
    plain.index_embeddings("cat", items, "image")
    with pytest.raises(InvalidParameterError, match="has no CSA: open it with csa_dim"):
        plain.search_embeddings("cat", txt[:1], "text", method="csa")
    plain.close()
    asif = ASIF(path=tmp_path / "m", csa_dim=4, show_progress_bar=False)
    try:
        with pytest.raises(InvalidParameterError, match=r"has no CSA vectors.*reindex\('cat'\)"):
            asif.search_embeddings("cat", txt[:1], "text", method="csa")
        asif.reindex("cat")
        (hits,) = asif.search_embeddings("cat", txt[:1], "text", method="csa", limit=8)
        sims = asif.csa.similarity(l2_normalize(txt[:1]), "text", l2_normalize(items), "image")[0]
        np.testing.assert_allclose([h.score for h in hits], np.sort(sims)[::-1], atol=1e-4)
        assert asif.store.count("cat") == 8
    finally:
        asif.close()


def test_bad_search_options(tmp_path: Path) -> None:
    img, txt = _data(20)
    asif = _model("edge", tmp_path, csa_dim=3)
    try:
        asif.add_anchor_embeddings(img, txt)
        asif.index_embeddings("cat", img[:4], "image")
        q = txt[:1]
        with pytest.raises(InvalidParameterError, match=r"'method' parameter of ASIF\.search"):
            asif.search_embeddings("cat", q, "text", method="clip")  # type: ignore[arg-type]
        with pytest.raises(InvalidParameterError, match="with method='asif'"):
            asif.search_embeddings("cat", q, "text", method="csa", query_via="invert")
        with pytest.raises(InvalidParameterError, match="'fusion' parameter"):
            asif.search_embeddings("cat", q, "text", method="hybrid", fusion="max")  # type: ignore[arg-type]
        # Items indexed without captions have no caption vector: nothing to find.
        assert asif.search_embeddings("cat", q, "text", target="caption") == [[]]
        vec = asif.relative_from_embeddings(q, "text")[0]
        with pytest.raises(InvalidInputError, match="SparseVector query works with method='asif'"):
            asif.search("cat", vec, method="csa")
        assert asif.search("cat", vec, limit=2)  # the plain path still takes sparse vectors
    finally:
        asif.close()


def test_classify_with_csa_and_hybrid(tmp_path: Path) -> None:
    from PIL import Image

    from tests.conftest import ColorImageEncoder, HashTextEncoder

    rng = np.random.default_rng(0)
    names = ["red", "green", "blue", "yellow", "purple", "cyan", "black", "white"]
    colors = [
        (230, 20, 20),
        (20, 200, 20),
        (20, 20, 230),
        (240, 240, 10),
        (150, 0, 150),
        (0, 220, 220),
        (10, 10, 10),
        (245, 245, 245),
    ]
    images, captions = [], []
    for name, c in zip(names, colors, strict=True):
        for _ in range(4):
            jitter = np.clip(np.array(c) + rng.integers(-25, 26, size=3), 0, 255)
            images.append(Image.new("RGB", (8, 8), tuple(int(v) for v in jitter)))
            captions.append(f"a {name} square")
    with ASIF(
        path=tmp_path / "m",
        k=6,
        csa_dim=6,
        image_encoder=ColorImageEncoder(),
        text_encoder=HashTextEncoder(),
        show_progress_bar=False,
    ) as asif:
        asif.add_anchors(images, captions)
        tests = images[::4][:5]
        labels = names[:5]
        templates = ["a {} square", "{}"]
        pred = asif.classify(
            tests, labels, templates=templates, template_strategy="max", method="csa"
        )
        scores = asif.classify_scores(
            tests, labels, templates=templates, template_strategy="max", method="csa"
        )
        unit = l2_normalize(ColorImageEncoder().embed(tests))
        prompts = l2_normalize(
            HashTextEncoder().embed([t.format(x) for x in labels for t in templates])
        )
        direct = asif.csa.similarity(unit, "image", prompts, "text").reshape(5, 5, 2).max(axis=2)
        np.testing.assert_allclose(scores, direct, atol=1e-5)
        assert pred == [labels[j] for j in direct.argmax(axis=1)]
        a_scores = asif.classify_scores(tests, labels, templates=templates, template_strategy="max")
        h_scores = asif.classify_scores(
            tests, labels, templates=templates, template_strategy="max", method="hybrid"
        )
        expect = np.zeros((5, 5))
        for part in (a_scores, direct):
            for row in range(5):
                for rank, j in enumerate(np.argsort(-part[row], kind="stable")):
                    expect[row, j] += 1.0 / (2 + rank)
        np.testing.assert_allclose(h_scores, expect, atol=1e-6)
        with pytest.raises(InvalidParameterError, match="min_shared_anchors"):
            asif.classify(tests, labels, method="csa", min_shared_anchors=1)
